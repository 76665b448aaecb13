"""Settings are checked without torch: the facts `config.validate` needs about the networks (the
models, the sizes each draws, the blocks of its discriminator) and the DiffAugment op names live in
torch-free modules that models.py and augment.py build from."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from animegan.architectures import discriminator_block_count
from animegan.augment import diff_augment
from animegan.config import DIFFAUG_OPS, IMAGE_SIZES, PRESETS, ConfigError, TrainConfig, preset_config, validate
from animegan.models import MODELS, build_models, discriminator_blocks

ROOT = Path(__file__).resolve().parent.parent

# What the dashboard's Start does before the job's own process starts: the settings checked (every
# preset, and a refusal), the job starter imported, the checks of a run on the built-in data set.
START_PATH = """
import json, sys
from animegan.config import PRESETS, ConfigError, TrainConfig, preset_config, validate
for name in PRESETS:
    validate(preset_config(name))
try:
    validate(TrainConfig(model="dcgan", img_size=96))
except ConfigError as e:
    refused = str(e)
from animegan import jobs
from animegan.preflight import preflight
plan = preflight(preset_config("anime64", data="synthetic"), processes=1)
print(json.dumps({"torch": "torch" in sys.modules, "refused": refused, "steps": plan.total_steps}))
"""


def test_checking_settings_before_a_start_never_imports_torch(animegan_home):
    r = subprocess.run([sys.executable, "-c", START_PATH], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "ANIMEGAN_HOME": str(animegan_home)})
    assert r.returncode == 0, r.stderr
    said = json.loads(r.stdout.strip().splitlines()[-1])
    assert said["refused"].startswith("model dcgan cannot draw 96px images"), said
    assert said["steps"] > 0
    assert said["torch"] is False, "checking settings must not import torch (a second or more per Start)"


@pytest.mark.parametrize("model", list(MODELS))
def test_the_block_count_validate_uses_is_the_built_discriminators(model):
    for size in (16, 24, 32, 48, 64, 96, 128):
        try:
            _, D = build_models(model, 8, 2, 2, size)
        except ValueError as e:
            with pytest.raises(ValueError) as counted:
                discriminator_block_count(model, size)
            assert str(counted.value) == str(e), (model, size)
            if size in IMAGE_SIZES:
                with pytest.raises(ConfigError, match=f"^model {model} cannot draw {size}px images: "):
                    validate(TrainConfig(model=model, img_size=size))
            continue
        blocks = len(discriminator_blocks(D))
        assert discriminator_block_count(model, size) == blocks, (model, size)
        if size in IMAGE_SIZES:
            validate(TrainConfig(model=model, img_size=size, freeze_d=blocks))
            with pytest.raises(ConfigError, match=f"has {blocks} blocks; freeze at most {blocks}"):
                validate(TrainConfig(model=model, img_size=size, freeze_d=blocks + 1))


def test_every_diffaugment_op_a_setting_can_name_augments():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    for op in DIFFAUG_OPS:
        validate(TrainConfig(diffaug=op))
        assert not torch.equal(diff_augment(x, op, torch.Generator().manual_seed(0)), x), op
    with pytest.raises(ConfigError, match="unknown DiffAugment op"):
        validate(TrainConfig(diffaug="color,blur"))


def test_every_preset_is_valid():
    for name in PRESETS:
        validate(preset_config(name))
