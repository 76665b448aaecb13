"""Compare compares: one button measures every selected checkpoint the same way (one background job
at a time, the rest queued, results kept by checkpoint content and settings), one chart puts them
side by side with the size in the legend, and the page says which numbers compare and why not."""
from __future__ import annotations

import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from animegan import comparison, data, jobs, paths
from animegan.metrics import evaluation
from app_pages import after_paint
from tests.chart_data import vega_chart
from tests.test_data import noise, put
from tests.test_runs_compare import COMPARE, TIMEOUT, save_tiny_generator


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path, animegan_home):
    yield
    job = jobs.current_job()
    if job is not None:
        jobs.stop_job(job, timeout=10)


@pytest.fixture
def faces(tmp_path):
    root = tmp_path / "faces"
    for i in range(40):   # a test split of 4
        put(root / f"img{i:03d}.png", noise(64, 64, seed=100 + i))
    return root


@pytest.fixture
def three(tmp_path, monkeypatch):
    """Two 64 px checkpoints and a 96 px one, offered as shipped."""
    from animegan.checkpoint import load_checkpoint, save_checkpoint
    shipped = tmp_path / "shipped"
    for i, (name, size) in enumerate((("a64", 64), ("b96", 96), ("c64", 64))):
        save_tiny_generator(shipped / f"{name}.pt", size)
        ck = load_checkpoint(shipped / f"{name}.pt")
        save_checkpoint(dict(ck, step=100 + i), shipped / f"{name}.pt")  # three files (results are kept by content)
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", shipped)
    return shipped


def app(**state) -> AppTest:
    """Compare in a new session, as after the browser painted it once (app_pages/after_paint.py)."""
    at = AppTest.from_file(COMPARE, default_timeout=TIMEOUT)
    at.session_state[after_paint.painted_key("cmp_below")] = True
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def measured(path, faces, size: int, value: float, n: int = 8, split: str = "test") -> None:
    ref = evaluation.reference_label(str(faces), data.fingerprint(faces), size, split)
    comparison.record(path, {"metric": "swd", "value": value, "n": n, "reference": ref, "seed": 0})


def the_chart(at: AppTest) -> dict:
    """The one chart of the selected checkpoints measured this way (its spec and rows)."""
    return vega_chart(at, "SWD of ")


def bars(chart: dict) -> dict[str, dict[str, float]]:
    """What the chart draws: image size (a colour in the legend) -> checkpoint -> bar height."""
    out: dict[str, dict[str, float]] = {}
    for r in chart["rows"]:
        if r["measured"]:
            out.setdefault(r["size"], {})[r["checkpoint"]] = r["value"]
    return out


def y_starts_at_zero(chart: dict) -> bool:
    bar = next(layer for layer in chart["spec"]["layer"] if layer["mark"]["type"] == "bar")
    return bar["encoding"]["y"]["scale"].get("zero") is True


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_one_chart_side_by_side_with_sizes_and_what_compares(three, faces):
    measured(three / "a64.pt", faces, 64, 40.0)
    measured(three / "c64.pt", faces, 64, 20.0)
    measured(three / "b96.pt", faces, 96, 30.0)
    measured(three / "c64.pt", faces, 64, 99.0, split="val")      # measured another way: not this chart
    at = app(cmp_eval_data=str(faces), cmp_eval_n=8)
    chart = the_chart(at)
    assert bars(chart) == {"64 px": {"shipped: a64": 40.0, "shipped: c64": 20.0}, "96 px": {"shipped: b96": 30.0}}
    assert y_starts_at_zero(chart)                                # heights compare: 20 is half of 40
    text = captions(at)
    assert "**shipped: a64**, **shipped: c64** (64 px): compare with each other" in text
    assert "64 px against 96 px" in text
    assert at.button(key="cmp_eval_go").disabled                  # all three measured this way
    table = at.table[0].value
    assert list(table["size"]) == ["64 px", "96 px", "64 px"] and list(table["realism judge"]) == ["not recorded"] * 3


def test_the_realism_judge_shows_beside_swd_where_recorded(three, faces):
    measured(three / "a64.pt", faces, 64, 40.0)
    ref = evaluation.reference_label(str(faces), data.fingerprint(faces), 64, "test")
    comparison.record(three / "a64.pt", {"accuracy": 0.875, "n": 8, "reference": ref, "seed": 0, "split": "test"})
    at = app(cmp_eval_data=str(faces), cmp_eval_n=8, cmp_sel=["shipped: a64"])
    assert list(at.table[0].value["realism judge"]) == ["0.875"]
    assert "judge 0.875" in the_chart(at)["rows"][0]["label"]


def test_results_are_kept_by_content_not_path(three, faces, tmp_path):
    copy = tmp_path / "elsewhere" / "same-bytes.pt"
    copy.parent.mkdir()
    shutil.copyfile(three / "a64.pt", copy)
    measured(three / "a64.pt", faces, 64, 40.0)
    m = comparison.Measure(data=str(faces), n=8)
    assert comparison.recorded(copy, m, data.fingerprint(faces), 64)["value"] == 40.0
    assert comparison.recorded(three / "b96.pt", m, data.fingerprint(faces), 96) is None
    assert comparison.recorded(copy, comparison.Measure(data=str(faces), n=16), data.fingerprint(faces), 64) is None


def test_numbers_measured_differently_say_why_they_do_not_compare():
    a = {"metric": "swd", "n": 2000, "reference": "val split of /data/faces.zip (83d3dc1d) @64px"}
    b = {"metric": "swd", "n": 2000, "reference": "test split of /other/copy.zip (83d3dc1d) @96px"}
    assert comparison.differences(a, b) == ["val split against test split", "64 px against 96 px"]
    c = dict(a, reference="val split of /elsewhere/faces.zip (83d3dc1d) @64px")
    assert comparison.differences(a, c) == []                  # the same data wherever it lies


def test_one_button_measures_every_selected_checkpoint_one_job_at_a_time(three, faces):
    at = app(cmp_eval_data=str(faces), cmp_eval_n=4, cmp_sel=["shipped: a64", "shipped: b96"])
    assert at.button(key="cmp_eval_go").label == "Measure 2 of 2 in the background"
    at.button(key="cmp_eval_go").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["cmp_job"] is not None and len(at.session_state["cmp_queue"]) == 1
    assert at.button(key="cmp_eval_go").disabled               # one job at a time
    started = {at.session_state["cmp_job"].pid}
    end = time.time() + 300
    while time.time() < end and ("cmp_job" in at.session_state or at.session_state["cmp_queue"]):
        time.sleep(2)
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        if "cmp_job" in at.session_state:
            started.add(at.session_state["cmp_job"].pid)
    assert len(started) == 2, "the second checkpoint was measured after the first"
    assert {size: list(drawn) for size, drawn in bars(the_chart(at)).items()} == {"64 px": ["shipped: a64"],
                                                                                "96 px": ["shipped: b96"]}
    assert at.button(key="cmp_eval_go").label == "All measured this way"


def test_training_time_is_what_the_trainer_recorded(tmp_path, monkeypatch):
    from animegan.checkpoint import load_checkpoint, save_checkpoint
    shipped = tmp_path / "shipped"
    save_tiny_generator(shipped / "timed.pt", 64)
    ck = load_checkpoint(shipped / "timed.pt")
    ck["info"] = {"train_seconds": 3172.5}
    save_checkpoint(ck, shipped / "timed.pt")
    save_tiny_generator(shipped / "untimed.pt", 64)
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", shipped)
    md = "\n".join(m.value for m in app().markdown)
    assert "training time: 53 min (recorded by the trainer)" in md
    assert "training time not recorded in this checkpoint" in md
