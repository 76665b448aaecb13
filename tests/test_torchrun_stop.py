"""Stopping under torchrun (gloo, 2 CPU processes): every reason to stop (a signal, an early stop
by --eval-every or --eval-kimg, the time budget, a collapse) ends both ranks at the same step,
with last.pt written once and the state and reason recorded; a rank that is killed or stops
answering fails the run in words, leaves no process behind, and the run resumes.

Each rank says how it ended in one line ("run NAME: STATE (REASON) at step N [rank R of 2]").
The timeouts below guard against hangs; nothing here asserts a speed. A spy (sitecustomize.py on
the trainers' PYTHONPATH) records every checkpoint save: rank, file name, step.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from animegan import jobs
from animegan.checkpoint import load_checkpoint
from animegan.config import preset_config
from animegan.processes import pid_alive
from animegan.rundir import Run
from animegan.synth import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD = 180  # seconds for a run to end once it should: a hang guard, not a speed assertion
STEPS_PER_EPOCH = 5  # 48 faces - 4 val - 4 test = 40 training images, batch 8
TINY_RUN = ["--device", "cpu", "--ngf", "8", "--ndf", "8", "--batch-size", "8", "--val-size", "4", "--test-size", "4",
            "--compile", "off", "--threads", "1", "--n-samples", "16", "--latest-every", "1000", "--log-every", "5",
            "--no-progress"]
TINY = ["--preset", "classic-dcgan", *TINY_RUN]
ENDED = re.compile(r"run \S+: (\w+)(?: \((\w+)\))? at step (\d+) \[rank (\d) of 2\]")
SPY = '''
import os
if os.environ.get("ANIMEGAN_TEST_SAVES"):
    from animegan import checkpoint as _ck
    _real_save = _ck.save_checkpoint

    def _spy_save(obj, path, *a, **kw):
        out = _real_save(obj, path, *a, **kw)
        with open(os.environ["ANIMEGAN_TEST_SAVES"], "a") as f:
            f.write(f"{os.environ.get('RANK', '-')} {os.path.basename(str(path))} {obj.get('step')}\\n")
        return out
    _ck.save_checkpoint = _spy_save
'''


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("faces"), n=48)


@pytest.fixture
def spy(tmp_path):
    d = tmp_path / "spy"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SPY)
    return d


class Launch:
    """One torchrun (2 ranks) training run in the background; its output in a log file."""

    def __init__(self, out: Path, args: list[str], home: Path, spy: Path, **env: str):
        self.out, self.log = out, out.parent / f"{out.name}-{time.monotonic_ns()}.log"
        self.saves = out.parent / f"{out.name}-saves.txt"
        self.env = {**os.environ, "ANIMEGAN_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(spy), str(ROOT)]),
                    "OMP_NUM_THREADS": "1", "ANIMEGAN_TEST_SAVES": str(self.saves), **env}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "animegan",
               "train", *args]
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.workers: dict[int, int] = {}

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ranks(self) -> dict[int, int]:
        """{rank: pid} of torchrun's workers (each in a session of its own: found through /proc)."""
        end = time.monotonic() + HANG_GUARD
        while len(self.workers) < 2 and time.monotonic() < end:
            self.workers.update(_children_by_rank(self.proc.pid))
            assert self.proc.poll() is None, self.text()[-3000:]
            time.sleep(0.2)
        assert len(self.workers) == 2, self.text()[-3000:]
        return dict(self.workers)

    def wait_running(self, step: int = 3, last_pt: bool = False) -> dict:
        """Until status.json says running at `step` or later (and last.pt exists, if asked)."""
        self.ranks()
        end = time.monotonic() + HANG_GUARD
        while time.monotonic() < end:
            st = Run(self.out).status()
            if st.state == "running" and st.step >= step and (
                    not last_pt or (self.out / "checkpoints" / "last.pt").exists()):
                return st
            assert self.proc.poll() is None, self.text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"the run never got to step {step}:\n{self.text()[-3000:]}")

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"torchrun still running {HANG_GUARD} s later (a hang):\n{self.text()[-3000:]}") from None

    def ended(self) -> dict[int, tuple[str, str | None, int]]:
        """Each rank's last words: {rank: (state, reason, step)}."""
        return {int(r): (s, why or None, int(n)) for s, why, n, r in ENDED.findall(self.text())}

    def saves_of(self, name: str) -> list[tuple[str, int]]:
        lines = self.saves.read_text().split("\n") if self.saves.exists() else []
        return [(r, int(s)) for r, n, s in (ln.split() for ln in lines if ln) if n == name]

    def kill(self) -> None:
        for pid in [*self.workers.values(), self.proc.pid]:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        self.proc.wait(timeout=30)


def _children_by_rank(parent: int) -> dict[int, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            env = dict(kv.split("=", 1) for kv in (d / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError, IndexError):
            continue
        if "RANK" in env:
            out[int(env["RANK"])] = int(d.name)
    return out


@pytest.fixture
def launch(animegan_home, spy):
    started: list[Launch] = []

    def start(out: Path, *args: str, **env: str) -> Launch:
        run = Launch(out, list(args), animegan_home, spy, **env)
        started.append(run)
        return run

    yield start
    for run in started:  # whatever a failed test left running
        run.kill()


def _gone(*pids: int) -> bool:
    end = time.monotonic() + 10  # a process just killed by torchrun: a moment to be reaped
    while any(pid_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    return not any(pid_alive(p) for p in pids)


def _assert_ended_together(run: Launch, state: str, reason: str | None, last_pt_once: bool = True) -> int:
    """status.json says `state` for `reason`; both ranks ended so at the same step; last.pt was
    written once at that step, by rank 0 (unless last_pt_once=False). Returns that step."""
    st = json.loads((run.out / "status.json").read_text())
    assert st["state"] == state, (st, run.text()[-3000:])
    step = st["step"]
    if last_pt_once:
        assert load_checkpoint(run.out / "checkpoints" / "last.pt")["step"] == step
        assert [s for s in run.saves_of("last.pt") if s[1] == step] == [("0", step)], run.saves_of("last.pt")
    assert all(r == "0" for r, _ in run.saves_of("last.pt")), "rank 0 alone writes"
    assert st["stop_reason"] == reason, st
    ended = run.ended()
    assert sorted(ended) == [0, 1], run.text()[-3000:]
    assert ended[0] == ended[1] == (state, reason, step), ended
    assert st["ranks_max_param_diff"] == 0.0
    assert _gone(*run.workers.values()), "no rank left behind"
    return step


# -- every reason to stop --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["torchrun", "rank 1", "both ranks"])
def test_a_signal_stops_every_rank_at_the_same_step(who, faces, tmp_path, launch):
    out = tmp_path / "run"
    run = launch(out, *TINY, "--data", str(faces), "--out", str(out), "--epochs", "1000", "--collapse-action", "warn")
    run.wait_running()
    ranks = run.ranks()
    for pid in {"torchrun": [run.proc.pid], "rank 1": [ranks[1]], "both ranks": list(ranks.values())}[who]:
        os.kill(pid, signal.SIGTERM)
    rc = run.wait()
    if who != "torchrun":  # (torchrun itself reports the signal it got as its failure)
        assert rc == 0, run.text()[-3000:]
    step = _assert_ended_together(run, "stopped", "signal")
    assert [e["step"] for e in Run(out).events() if e["event"] == "stopped"] == [step]


def test_an_early_stop_by_eval_every_ends_every_rank_finished(faces, tmp_path, launch):
    # The run: evaluations every epoch, patience 1. With learning rates ~0 the generator
    # never improves, so the second evaluation ends the run (at the end of an epoch).
    out = tmp_path / "run"
    run = launch(out, *TINY, "--data", str(faces), "--out", str(out), "--epochs", "12", "--eval-every", "1",
                 "--eval-n", "4", "--patience", "1", "--lr-g", "1e-12", "--lr-d", "1e-12", "--collapse-action", "warn")
    assert run.wait() == 0, run.text()[-3000:]
    step = _assert_ended_together(run, "finished", "early_stop")
    assert step % STEPS_PER_EPOCH == 0 and step < 12 * STEPS_PER_EPOCH
    assert [e["step"] for e in Run(out).events() if e["event"] == "early_stop"] == [step]
    assert Run(out).evals()[-1]["step"] == step
    assert "early stop: no improvement in 1 evaluations" in (out / "train.log").read_text()


def test_an_early_stop_by_eval_kimg_mid_epoch_ends_every_rank_finished(faces, tmp_path, launch):
    out = tmp_path / "run"
    run = launch(out, *TINY, "--data", str(faces), "--out", str(out), "--epochs", "12", "--eval-kimg", "0.024",
                 "--eval-n", "4", "--patience", "1", "--lr-g", "1e-12", "--lr-d", "1e-12", "--collapse-action", "warn")
    assert run.wait() == 0, run.text()[-3000:]
    step = _assert_ended_together(run, "finished", "early_stop")
    assert step % 3 == 0, "at an evaluation: every 24 images = 3 steps"
    assert [e["step"] for e in Run(out).events() if e["event"] == "early_stop"] == [step]
    assert [e["event"] for e in Run(out).events()].count("stopped") == 0


def test_the_time_budget_ends_every_rank_finished(faces, tmp_path, launch):
    # classic-wgangp (the WGAN-GP critic, 5 critic steps a step): its gradient penalty under data
    # parallelism, the ranks' weights identical at the end (_assert_ended_together)
    out = tmp_path / "run"
    run = launch(out, "--preset", "classic-wgangp", *TINY_RUN, "--data", str(faces), "--out", str(out), "--epochs", "100000",
                 "--minutes", "0.05", "--log-every", "1", "--eval-kimg", "0.4", "--eval-n", "4", "--collapse-action", "warn")
    assert run.wait() == 0, run.text()[-3000:]
    step = _assert_ended_together(run, "finished", "time_budget")
    assert json.loads((out / "status.json").read_text())["world_size"] == 2
    assert [e["step"] for e in Run(out).events() if e["event"] == "time_budget"] == [step]
    assert Run(out).evals()[-1]["step"] == step, "the budget's end is evaluated"
    assert any(v > 0 for v in Run(out).metrics()["gp"]), "gradient penalty under data parallelism"


@pytest.mark.parametrize("action", ["stop", "rollback"])
def test_a_collapse_ends_every_rank_collapsed(action, faces, tmp_path, launch):
    # A spread threshold no generator meets: the first judged sample grid (step 20) is a collapse.
    out = tmp_path / "run"
    run = launch(out, *TINY, "--data", str(faces), "--out", str(out), "--epochs", "100", "--collapse-spread", "100",
                 "--collapse-action", action)
    run.wait()
    step = _assert_ended_together(run, "collapsed", "collapse", last_pt_once=False)
    last = load_checkpoint(out / "checkpoints" / "last.pt")["step"]
    assert last < step and not [s for s in run.saves_of("last.pt") if s[1] == step], "the last good last.pt stays"
    events = [e["event"] for e in Run(out).events()]
    assert events.count("collapse") == (1 if action == "stop" else 4) and events.count("rollback") == (0 if action == "stop" else 3)


# -- a lost rank -----------------------------------------------------------------------------------


def test_a_killed_rank_fails_the_run_in_words_and_it_resumes(faces, tmp_path, launch):
    out = tmp_path / "run"
    args = [*TINY, "--data", str(faces), "--out", str(out), "--epochs", "1000", "--collapse-action", "warn"]
    run = launch(out, *args)
    run.wait_running(step=STEPS_PER_EPOCH, last_pt=True)
    ranks = run.ranks()
    os.kill(ranks[1], signal.SIGKILL)
    assert run.wait() != 0
    assert _gone(run.proc.pid, *ranks.values()), "no process left behind"
    st = Run(out).status()
    assert st.state == "failed", st
    assert f"rank 1 (pid {ranks[1]}) of 2 is gone" in st.last_error, st.last_error
    assert not re.search(r"gloo|pair\.cc|RuntimeError|Traceback|\.cc:", st.last_error), st.last_error
    assert f"error: training process rank 1 (pid {ranks[1]})" in run.text(), "the CLI says it in one line"

    # resumed under torchrun again: from last.pt, past its step
    before = load_checkpoint(out / "checkpoints" / "last.pt")["step"]
    again = launch(out, "--resume", str(out), "--no-progress", "--max-steps", str(before + 3))
    assert again.wait() == 0, again.text()[-3000:]
    assert re.findall(r"resumed from \S+ at step (\d+)", (out / "train.log").read_text())[-1] == str(before)
    step = _assert_ended_together(again, "finished", None)
    assert step == before + 3 and load_checkpoint(out / "checkpoints" / "last.pt")["step"] == step


def test_a_killed_rank_0_is_seen_dead_by_every_reader(faces, tmp_path, monkeypatch):
    # Started as the dashboard starts it (jobs.start_training); rank 0, the only writer, is killed.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = preset_config("classic-dcgan", data=str(faces), device="cpu", ngf=8, ndf=8, batch_size=8, val_size=4,
                        test_size=4, compile="off", threads=1, n_samples=16, latest_every=1000, epochs=1000,
                        collapse_action="warn")
    job = jobs.start_training(cfg, "ddp", nproc=2, check_data=False)
    out = job.run_dir
    workers: dict[int, int] = {}
    try:
        end = time.monotonic() + HANG_GUARD
        while time.monotonic() < end and not (Run(out).status().state == "running" and len(workers) == 2):
            workers.update(_children_by_rank(job.pid))
            assert job.alive(), job.log_tail()
            time.sleep(0.2)
        st = Run(out).status()
        assert st.state == "running" and st.pid == workers[0], (st, workers)  # rank 0's pid is recorded
        os.kill(workers[0], signal.SIGKILL)
        end = time.monotonic() + HANG_GUARD
        while jobs.current_job() is not None and time.monotonic() < end:
            time.sleep(0.2)
        assert jobs.current_job() is None, f"torchrun still running {HANG_GUARD} s later:\n{job.log_tail()}"
        assert _gone(job.pid, *workers.values()), "no process left behind"
    finally:
        for pid in [*workers.values(), job.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert json.loads((out / "status.json").read_text())["state"] == "running", "nobody else writes status.json"
    st = Run(out).status()
    assert st.state == "dead" and "gone" in st.last_error, st
    assert f"training process rank 0 (pid {workers[0]}) of 2 is gone" in job.log_tail(200), "rank 1 says why it left"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "animegan", "runs"], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=HANG_GUARD)
    assert re.search(r"^ddp\s+dead\s", r.stdout, re.M), r.stdout + r.stderr


def test_a_rank_that_stops_answering_is_lost_after_the_collective_timeout(faces, tmp_path, launch):
    out = tmp_path / "run"
    run = launch(out, *TINY, "--data", str(faces), "--out", str(out), "--epochs", "1000", "--collapse-action", "warn",
                 ANIMEGAN_COLLECTIVE_TIMEOUT="5")
    run.wait_running()
    ranks = run.ranks()
    os.kill(ranks[1], signal.SIGSTOP)  # alive, silent: only the timeout can tell
    end = time.monotonic() + HANG_GUARD
    while Run(out).status().state != "failed" and time.monotonic() < end:
        time.sleep(0.2)
    st = Run(out).status()
    assert st.state == "failed", run.text()[-3000:]
    assert "rank 1 of 2 stopped answering (no reply within 5 s)" in st.last_error, st.last_error
    # torchrun then ends rank 1 with SIGTERM (a stopped process takes it once it runs again; without
    # SIGCONT torchrun's SIGKILL would come 30 s later): a hung rank, unlike a stopped one, hears it
    os.kill(ranks[1], signal.SIGCONT)
    run.wait()
    assert _gone(run.proc.pid, *ranks.values()), "no process left behind"
