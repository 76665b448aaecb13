"""step.compile_decision: compile=auto weighs the time budget, and says why (issue 26 #2)."""
from __future__ import annotations

import time

from animegan import speed, step
from animegan.config import TrainConfig
from animegan.preflight import DataPlan


def test_auto_compiles_only_when_compiling_is_a_small_share_of_the_budget(monkeypatch):
    monkeypatch.setattr(step.shutil, "which", lambda name: "/usr/bin/cc")
    cfg = TrainConfig(compile="auto")
    on, why = step.compile_decision(cfg, "cpu", 5_000)
    # the measured cost (animegan/compile_cost.json), as the user reads it
    assert on and f"about {step.COMPILE_SECONDS:.0f} s of compiling first" in why
    assert 0.1 * 1.5 * 60 < step.COMPILE_SECONDS < 0.1 * 30 * 60   # the two budgets below fall either side of it
    on, why = step.compile_decision(cfg.replace(minutes=1.5), "cpu", 5_000)   # issue 26: sat 75 s of 90 s at step 0
    assert not on and "1.5 min budget" in why
    assert step.compile_decision(cfg.replace(minutes=30), "cpu", 5_000)[0]    # under a minute of 30: worth it
    assert not step.compile_decision(cfg, "cpu", 100)[0]
    assert step.compile_decision(cfg.replace(compile="on", minutes=1.5), "cpu", 10)[0]  # asked for: on
    monkeypatch.setattr(step.shutil, "which", lambda name: None)
    assert "no C compiler" in step.compile_decision(cfg, "cpu", 5_000)[1]


def test_the_estimate_adds_compiling_on_top_of_the_budgeted_training_time():
    plan = DataPlan(label="x", images=1000, exact=True, train=1000, val=0, test=0, batch_size=10, largest_side=64)
    cfg = TrainConfig(epochs=10, batch_size=10, minutes=2)
    found = speed.Speed(10.0, "measured", "timed", timed_at=time.time())   # a step a second: 1,000 s of steps
    fast = speed.as_the_run_will_train(found, compiles=True)
    assert fast.images_per_s == 10.0 * step.COMPILE_SPEEDUP
    assert speed.as_the_run_will_train(found, compiles=False) is found
    assert speed.estimate_seconds(cfg, plan, found, compiles=True) == 120 + step.COMPILE_SECONDS  # budget + compiling
    assert speed.estimate_seconds(cfg.replace(minutes=0), plan, found, compiles=False) == 1000


def test_the_budget_clock_starts_after_the_compiled_first_step():
    """A run that compiles gets its whole --minutes of training: the clock starts once compiling ends."""
    import torch

    from animegan.train import LoopState, _accumulate

    class Writer:
        def __init__(self):
            self.status = {}

        def update_status(self, **kw):
            self.status.update(kw)
    loop = LoopState(compiling=True, t_budget=time.time() - 75)   # 75 s spent compiling
    w = Writer()
    _accumulate(w, loop, {"loss_D": torch.tensor(1.0)})
    assert w.status == {"compiling": False} and time.time() - loop.t_budget < 5
