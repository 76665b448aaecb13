"""scripts/bench.py: the whole benchmark code path on tiny synthetic data (width 8, batch 8, one step
per figure, no zip, no compile, no memory subprocess). Checks the JSON's sections and that every
figure is a positive number; never how fast anything is."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("animegan_bench", ROOT / "scripts" / "bench.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def bench():
    return load_bench()


@pytest.fixture(scope="module")
def result(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    rc = bench.main(["--tiny", "--device", "cpu", "--data", "synthetic", "--json", str(out)])
    assert rc == 0
    return json.loads(out.read_text())


def test_json_has_every_section(result):
    for key in ("device", "settings", "load_average", "training", "step_options", "generation", "cache_build",
                "fid_features", "memory"):
        assert key in result, key
    assert result["device"]["device"] == "cpu"
    assert result["device"]["torch"] and result["device"]["threads"] >= 1
    s = result["settings"]
    assert (s["mode"], s["width"], s["batch"], s["data"]) == ("tiny", 8, 8, "synthetic")


def test_training_figures_and_ratios(result):
    tr = result["training"]
    for k in ("classic_pipeline", "project_pipeline", "ceiling"):
        assert positive(tr[k]["images_per_s"]), k
        assert all(positive(w) for w in tr[k]["windows_images_per_s"])
    assert positive(tr["ratio"]["project_vs_classic"]) and positive(tr["ratio"]["project_vs_ceiling"])
    assert tr["ratio"]["of_medians"]["project_vs_classic"] == pytest.approx(
        tr["project_pipeline"]["images_per_s"] / tr["classic_pipeline"]["images_per_s"])
    losses = tr["project_pipeline"]["losses"]
    assert losses and all(math.isfinite(v) for row in losses for v in row)


def test_step_options(result):
    so = result["step_options"]
    v = so["variants"]
    for name in ("eager", "channels_last"):
        assert positive(v[name]["images_per_s"]), name
        assert v[name]["losses_match_eager"] is True  # same seed, same batch, fp32: equal up to rounding
    assert v["eager"]["speedup_vs_eager"] == pytest.approx(1.0)
    assert "skipped" in v["torch.compile"]  # --tiny leaves compiling out
    assert so["fastest"] in v and "images_per_s" in v[so["fastest"]] and so["verdict"]
    from animegan.devices import native_bf16
    if native_bf16(torch.device("cpu")):  # bf16 is timed beside the fp32 default, its losses checked with bf16's tolerance
        assert {"bf16", "bf16 + channels_last"} <= set(v) and v["bf16"]["bf16_autocast"] is True
    assert result["training"]["ceiling"]["variant"] == "eager"  # the project default on the CPU


def test_generation_cache_fid(result):
    gen = result["generation"]
    assert gen["note"] and gen["models"]
    for m in gen["models"]:
        assert positive(m["cold_s"]) and positive(m["warm_median_s"]) and positive(m["warm_images_per_s"])
    assert positive(result["cache_build"]["images_per_s"]) and result["cache_build"]["images"] > 0
    fid = result["fid_features"]
    assert positive(fid["images_per_s"]) and fid["images"] >= 2 and "weights" in fid["weights"]
    assert "skipped" in result["memory"]


def test_table_prints_every_row(bench, result, capsys):
    bench.print_table(result)
    out = capsys.readouterr().out
    header = out.splitlines()[2]
    assert header.split()[:6] == ["section", "measure", "value", "unit", "ratio", "note"]
    for word in ("classic pipeline", "project pipeline", "ceiling", "ratio 2/1", "ratio 2/3", "channels_last",
                 "torch.compile", "verdict", "warm median", "cache build", "FID features", "memory"):
        assert word in out, word


def test_the_benchmark_runs_the_trainers_own_step(bench, result):
    from animegan import step
    assert (bench.train_step, bench.real_batch, bench.build_nets) == (step.train_step, step.real_batch, step.build_nets)
    # The pipelines are timed on the ceiling's eager step: they differ by the input pipeline alone.
    assert result["settings"]["project_default_step"] == {"name": "project default", "channels_last": False,
                                                         "compile": False, "amp": False}
    cpu = torch.device("cpu")
    g = bench.Trainer(bench.parse_args(["--tiny", "--device", "cpu"]), cpu, bench.default_variant(cpu)).noise(3)
    assert g.initial_seed() == step.stream_seed(bench.SEED, 3, 0)  # the trainer's random stream of (seed, step, rank 0)


def test_losses_match(bench):
    ref = [(1.5, 3.0), (1.2, 5.0), (0.8, 6.0)]
    same = bench.losses_match(ref, [(1.5, 3.0001), (1.25, 4.8), (0.7, 6.3)], first_rtol=1e-3)
    assert same["losses_match_eager"] and same["steps_compared"] == 3  # later steps may drift, the mean holds
    assert same["first_step_rel_diff"] == pytest.approx(1e-4 / 3) and same["max_abs_step_diff"] == pytest.approx(0.3)
    assert not bench.losses_match(ref, [(1.6, 3.0), *ref[1:]], first_rtol=1e-3)["losses_match_eager"]  # step 1 differs
    assert not bench.losses_match(ref, [ref[0], (2.0, 7.0), (2.0, 8.0)], first_rtol=1e-3)["losses_match_eager"]  # drifts
    assert not bench.losses_match(ref, ref[:2], first_rtol=1e-3)["losses_match_eager"]


def test_defaults_by_mode(bench):
    full = bench.parse_args(["--device", "cpu"])
    assert (full.batch, full.width, full.repeats, full.compile_skip) == (64, 64, 3, None)
    assert full.warmup + full.repeats * full.steps >= 1
    quick = bench.parse_args(["--device", "cpu", "--quick", "--repeats", "4"])
    assert quick.repeats == 4 and quick.compile_skip and quick.memory_skip
    assert bench.parse_args(["--device", "cpu", "--quick", "--compile"]).compile_skip is None
