"""What torch.compile costs and gives is measured once, in one file (animegan/compile_cost.json,
written by `scripts/bench.py --compile-cost`), and compile="auto", its reasons and the README take
it from there: no figure typed by hand into the code."""
from __future__ import annotations

import json
from pathlib import Path

from animegan import step
from animegan.config import TrainConfig
from tests.test_bench import load_bench

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "animegan" / "compile_cost.json"


def bench_results(compile_warmup_s: float, eager_warmup_s: float, speedup: float) -> dict:
    """The parts of a scripts/bench.py result that the compile cost is made from."""
    return {"time": "2026-12-03T16:00:00", "load_average": {"start": [0.1, 0.2, 0.3], "end": [0.2, 0.2, 0.3]},
            "device": {"device": "cpu", "name": "Some CPU", "torch": "2.14.1", "threads": 16},
            "settings": {"preset": "classic-dcgan", "img_size": 64, "width": 64, "batch": 64, "warmup": 2,
                         "repeats": 3, "steps": 6},
            "step_options": {"variants": {
                "eager": {"images_per_s": 10.0, "first_warmup_s": eager_warmup_s},
                "torch.compile": {"images_per_s": 12.5, "first_warmup_s": compile_warmup_s, "speedup_vs_eager": speedup}}}}


def test_bench_writes_the_cost_of_compiling_as_the_trainer_reads_it(tmp_path):
    bench = load_bench()
    cost = bench.compile_cost(bench_results(compile_warmup_s=52.5, eager_warmup_s=10.0, speedup=1.25))
    assert cost["compile_seconds"] == 42.5 and cost["compile_speedup"] == 1.25
    assert "Some CPU" in cost["device"] and "16 threads" in cost["device"]
    assert set(cost) == set(json.loads(SHIPPED.read_text())), "the shipped file has what bench writes"
    skipped = bench_results(0, 10, 1)
    skipped["step_options"]["variants"]["torch.compile"] = {"skipped": "--no-compile"}
    assert bench.compile_cost(skipped) is None


def test_compile_auto_decides_and_explains_with_the_shipped_figures():
    shipped = json.loads(SHIPPED.read_text())
    assert shipped["device"] and shipped["compile_seconds"] > 0 and shipped["compile_speedup"] > 0
    assert step.COMPILE_COST_FILE == SHIPPED, "the trainer reads the shipped file"
    assert (step.COMPILE_SECONDS, step.COMPILE_SPEEDUP) == (shipped["compile_seconds"], shipped["compile_speedup"])
    on, why = step.compile_decision(TrainConfig(compile="on"), "cpu", 10_000)
    assert on and f"about {shipped['compile_seconds']:.0f} s of compiling" in why
    assert f"{shipped['compile_speedup']:.2f}× faster" in why
    # a budget where compiling is more than COMPILE_BUDGET_SHARE of it: off, and the reason says so
    minutes = shipped["compile_seconds"] / step.COMPILE_BUDGET_SHARE / 60 * 0.9
    on, why = step.compile_decision(TrainConfig(compile="auto", minutes=minutes), "cpu", 10_000)
    assert not on and f"about {shipped['compile_seconds']:.0f} s" in why


def test_no_compile_figure_is_typed_into_the_code_or_the_readme():
    shipped = json.loads(SHIPPED.read_text())
    sources = [ROOT / "animegan" / "step.py", ROOT / "animegan" / "speed.py", *sorted((ROOT / "app_pages").glob("*.py"))]
    for src in sources:
        text = src.read_text()
        for figure in (f"{shipped['compile_seconds']:g}", f"{shipped['compile_speedup']:g}"):
            assert f"= {figure}" not in text and f"{figure} s" not in text, f"{src.name} types {figure} by hand"
    readme = (ROOT / "README.md").read_text()
    assert "animegan/compile_cost.json" in readme
