"""The checkpoints that ship in checkpoints/: what a user sees on the first click."""
import pytest
import torch

from animegan import paths
from animegan.checkpoint import load_generator
from animegan.config import METRICS
from animegan.generate import generate

SHIPPED = ["anime64", "anime96", "dcgan64", "synthetic64"]
MAX_BYTES = 15 * 1024 * 1024


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_safely_and_draws_varied_faces(name):
    path = paths.SHIPPED_CHECKPOINTS / f"{name}.pt"
    assert path.exists(), f"{path} is missing: the dashboard's first impression depends on it"
    assert path.stat().st_size <= MAX_BYTES
    raw = torch.load(path, weights_only=True)  # tensors and plain values only
    assert raw["kind"] == "generator"
    # An exported generator holds one set of weights: the EMA average when the run kept one.
    has_ema = bool(raw["config"].get("ema_kimg"))
    assert (raw["G_ema"] is not None, raw["G"] is not None) == (has_ema, not has_ema)
    weights = raw["G_ema"] if has_ema else raw["G"]
    floats = [v.dtype for v in weights.values() if v.is_floating_point()]
    assert len(floats) > 10 and set(floats) == {torch.float16}
    card = raw["eval"]  # model card numbers travel with the file
    assert card["metric"] in METRICS and card["n"] >= 500 and card["value"] > 0 and card["reference"]
    lg = load_generator(path)
    a = generate(lg.G, seed=123, n=16).images
    b = generate(lg.G, seed=123, n=16).images
    size = lg.config.img_size
    assert a.shape == (16, 3, size, size) and a.dtype == torch.uint8 and size == (96 if name.endswith("96") else 64)
    assert torch.equal(a, b), "the same seed gives the same pixels"
    x = a.float()
    assert x.std() > 20, "not a flat image"
    # No collapse: every pair of faces differs clearly.
    d = (x[:, None] - x[None]).abs().mean(dim=(2, 3, 4))
    off = d[~torch.eye(16, dtype=torch.bool)]
    assert off.min() > 5, f"two faces are nearly identical (mean abs diff {off.min():.1f})"
