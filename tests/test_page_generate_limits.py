"""Generate: faces at no less than their own size, numbers out of range answered with the range,
a truncation strip that heads for the face it ends on, and the command line derived from the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from animegan import commands, generate, paths
from animegan.checkpoint import load_generator
from animegan.cli import build_parser
from tests.test_generate import PAGE_TIMEOUT, page
from tests.test_runs_compare import save_tiny_generator

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shipped96(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    save_tiny_generator(folder / "tiny96.pt", 96)
    monkeypatch.setattr(paths, "SHIPPED_CHECKPOINTS", folder)
    return folder / "tiny96.pt"


def face_grids(at) -> list[dict]:
    """What each clickable grid of faces on the page was given (app_pages/face_grid.py)."""
    return [json.loads(c.proto.json) for c in at.get("bidi_component") if c.proto.component_name == "animegan.face_grid"]


def test_a_96_px_checkpoint_is_shown_at_96_px_a_face(shipped96):
    at = page()
    [grid] = face_grids(at)
    cols, rows = 8, 8                           # the defaults: 64 faces, 8 columns
    assert grid["size"] == 96 and grid["width"] == cols * (96 + 2) + 2 and grid["height"] == rows * (96 + 2) + 2


@pytest.mark.parametrize("key, value, said", [
    ("gen_seed", -5, "Seed: -5 is out of range. Use a whole number from 0 to 2,147,483,647."),
    ("gen_n", 0, "Number of faces: 0 is out of range. Use a whole number from 1 to 256."),
    ("gen_n", 100_000, "Number of faces: 100000 is out of range. Use a whole number from 1 to 256."),
    ("gen_cols", 0, "Columns: 0 is out of range. Use a whole number from 1 to 32."),
])
def test_out_of_range_numbers_get_the_range(shipped96, key, value, said):
    at = page()
    at.number_input(key=key).set_value(value).run(timeout=PAGE_TIMEOUT)
    assert not at.exception, [e.message for e in at.exception]
    assert said in [e.value for e in at.error]
    assert not face_grids(at), "no stale grid under it"


def test_the_truncation_strip_heads_for_its_last_tile():
    """Each tile of the strip is closer to the last one (the average face, psi 0) than the tile
    before, by steps of similar size: no jump to a different face at the end."""
    G = load_generator(ROOT / "checkpoints" / "anime64.pt").G
    for seed in (0, 1):
        z = generate.latents(seed, [3], G.z_dim)[0]
        strip = generate.truncation_strip(G, z).float()
        assert len(strip) == len(generate.PSI_STRIP) and generate.PSI_STRIP[-1] == 0
        assert torch.equal(strip[-1], generate.average_face(G).float())
        assert torch.equal(strip[0], generate.render(G, z[None])[0].float())       # psi 1: the face itself
        dist = [(t - strip[-1]).abs().mean().item() for t in strip]
        assert all(a > b for a, b in zip(dist, dist[1:], strict=False)), dist
        steps = [a - b for a, b in zip(dist, dist[1:], strict=False)]
        assert max(steps) < 0.3 * dist[0], f"one step jumps: {steps}"


def test_the_command_shown_is_one_the_cli_parses_to_the_same_values(tmp_path):
    ck = tmp_path / "my faces" / "g.pt"
    line = commands.command("generate", always=("seed",), checkpoint=str(ck), seed=0, start=7, n=1, truncation=0.7,
                            edit=["0=2.5", "3=-1"], directions="ganspace", out="face.png")
    import shlex
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "animegan"]
    a = build_parser().parse_args(argv[3:])
    assert (a.cmd, a.checkpoint, a.seed, a.start, a.n, a.truncation, a.edit, a.directions, a.out) == (
        "generate", str(ck), 0, 7, 1, 0.7, ["0=2.5", "3=-1"], "ganspace", "face.png")
    assert "--rerank" not in line and "--cols" not in line           # defaults left out
    with pytest.raises(ValueError, match="no option for colour"):
        commands.command("generate", checkpoint="x.pt", out="y.png", colour="red")


def test_no_hand_written_cli_command_on_the_generate_page():
    src = (ROOT / "app_pages" / "generate.py").read_text()
    assert "animegan generate" not in src and "--start" not in src and "--edit" not in src


@pytest.mark.parametrize("key, value, said", [
    ("gen_steps", 1, "Steps: 1 is out of range. Use a whole number from 2 to 64."),
    ("gen_seed_b", -1, "Seed B: -1 is out of range. Use a whole number from 0 to 2,147,483,647."),
])
def test_interpolation_numbers_out_of_range_get_the_range(shipped96, key, value, said):
    at = page()
    at.number_input(key=key).set_value(value).run(timeout=PAGE_TIMEOUT)
    assert not at.exception, [e.message for e in at.exception]
    assert said in [e.value for e in at.error]
    assert not [s for s in at.slider if s.key == "gen_frame"], "no walk drawn from a number out of range"
