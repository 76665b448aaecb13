"""The prepared GPU run (scripts/gpu_run.sh): its CPU rehearsal end to end, and its refusal without CUDA."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from animegan.checkpoint import load_generator

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_run.sh"
EXPECTED = {"anime64-gpu.pt", "anime64-gpu-seed0.png", "bench.json", "metrics.jsonl", "evals.jsonl", "swd_test.json",
            "gpu_run.log"}


def _env(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("OUT", None)
    return env


def test_rehearsal_runs_every_phase_and_brings_back_the_files(tmp_path):
    out, carry = tmp_path / "out", tmp_path / "carry"
    # a 3-second training budget (the rehearsal's own is 30 s): every phase runs all the same
    r = subprocess.run(["bash", str(SCRIPT), "--rehearse", "--out", str(out), "--carry", str(carry), "--data", "synthetic",
                        "--minutes", "0.05"],
                       cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    log = (out / "gpu_run.log").read_text() if (out / "gpu_run.log").exists() else ""
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{log[-4000:]}"
    files = {p.name for p in out.iterdir()}
    assert files == EXPECTED, files
    assert len(files) <= 8 and all((out / f).stat().st_size < 16 * 2 ** 20 for f in files)
    for name in ("carry", "setup", "cache", "bench", "train", "export", "swd", "grid"):
        assert f"phase {name}: exit 0" in log, f"phase {name} did not succeed:\n{log[-3000:]}"
    swd = json.loads((out / "swd_test.json").read_text())
    assert swd["metric"] == "swd" and swd["n"] >= 2 and swd["value"] > 0 and "test split" in swd["reference"]
    bench = json.loads((out / "bench.json").read_text())
    assert bench["training"], bench.keys()
    lg = load_generator(out / "anime64-gpu.pt")
    assert lg.config.preset == "anime64-gpu"
    assert lg.G(torch.randn(2, lg.G.z_dim)).shape == (2, 3, 64, 64)
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert evals, "the budget's end is evaluated"
    assert "time budget of 0.05 min reached" in log, "the training ended at the budget it was given"


def test_without_cuda_it_refuses_in_one_clear_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be seen here")
    r = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "out")], cwd=ROOT, env=_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "--rehearse" in lines[0], r.stdout
