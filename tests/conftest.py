import fcntl
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_ZIP = ROOT.parent / "shared" / "data" / "anime-faces-96.zip"

# The tests `make check` leaves out (`pytest -m "not slow"`), so that it runs in under 2 minutes
# on a 2-core machine: those that start a process (a training or evaluation job, the CLI,
# torchrun, a streamlit server and a browser, a script), those that need the developer-only real
# data set, and those that train or measure for more than a few seconds in the test's own
# process. Kept in one place, by module or by test, so that test files say nothing about tiers.
# A new test that starts a process, or takes more than ~3 s, is added here.
SLOW_MODULES = {
    "test_browser", "test_browser_deeplink", "test_browser_flows", "test_browser_own_data", "test_browser_generate", "test_browser_runs",  # streamlit + Chromium
    "test_browser_pages",  # streamlit + Chromium
    "test_torchrun_stop",  # torchrun with 2 ranks
    "test_failure_paths",  # jobs killed and restarted
    "test_gpu_run", "test_model_card",  # scripts run as a user runs them
}
STARTS_A_PROCESS = {
    "test_cli.py": {"test_resume_refuses_a_run_another_process_trains_and_takes_it_once_that_is_gone"},
    "test_jobs.py": {
        "test_names_are_sanitized_and_existing_runs_refused", "test_two_concurrent_starts_give_one_job",
        "test_stale_lock_of_a_dead_process_is_recovered", "test_reservations_and_damaged_locks",
        "test_exit_code_of_a_job_whose_threads_outlive_its_main_thread", "test_failed_spawn_releases_the_lock",
        "test_bad_settings_are_refused_before_spawning", "test_eval_job_starts_and_ends",
        "test_an_eval_of_a_garbage_checkpoint_is_refused_on_submit", "test_fid_without_weights_is_refused_before_a_job_starts",
        "test_eval_job_measures_and_records", "test_real_training_job_runs_and_stops_gracefully",
        "test_a_run_resumed_from_the_dashboard_trains_on", "test_the_data_must_feed_the_settings_before_a_run_starts",
    },
    "test_page_train_runs.py": {
        "test_train_page_starts_watches_stops_and_resumes_a_job", "test_runs_page_resumes_a_run",
        "test_train_page_while_an_evaluation_runs",
    },
    "test_pages.py": {
        "test_app_runs_from_another_folder", "test_compare_busy_slot_is_reported",
        "test_compare_compute_fid_without_weights_then_swd",
    },
    "test_reliability.py": {
        "test_a_checkpoint_carrying_code_is_refused_and_never_runs", "test_sigkill_at_any_moment_loses_nothing_before_last_pt",
    },
    "test_train.py": {
        "test_sigterm_saves_a_checkpoint_and_exits_cleanly",
        "test_resume_of_a_run_another_live_process_trains_is_refused_untouched",
    },
    "test_zip_limits.py": {"test_a_huge_member_is_refused_by_name_and_prepare_stays_small"},
    "test_page_compare.py": {"test_one_button_measures_every_selected_checkpoint_one_job_at_a_time"},
}
TAKES_LONG = {  # in this process; measured with `pytest --durations` (times on a loaded 2-core machine)
    "test_bench.py": {  # the --tiny benchmark: 90 s
        "test_json_has_every_section", "test_training_figures_and_ratios", "test_step_options",
        "test_generation_cache_fid", "test_table_prints_every_row", "test_the_benchmark_runs_the_trainers_own_step",
    },
    "test_data.py": {"test_real_zip"},  # the real 30,000-face set: 80 s
    "test_realism.py": {"test_dcgan64_is_told_from_real_faces", "test_two_sets_of_real_faces_are_a_coin_toss"},
    "test_explore.py": {"test_an_inversion_of_a_face_the_generator_drew_reaches_mae_10"},
    "test_train.py": {
        "test_patience_stops_at_the_evaluation_that_exhausts_it", "test_healthy_training_is_not_flagged",
        "test_resume_gives_the_same_weights_as_one_go", "test_resume_of_a_run_whose_trainer_died_while_starting_goes_ahead",
        "test_forced_collapse_is_detected", "test_minutes_budget_ends_the_run_finished_with_a_checkpoint",
    },
    "test_pages.py": {"test_generate_same_seed_same_image_new_seed_changes", "test_generate_face_viewer_and_controls"},
    "test_generate.py": {
        "test_page_pick_steer_with_sliders_and_reset", "test_page_memorisation_check_with_a_discriminator",
        "test_page_projection_of_an_uploaded_face", "test_page_truncation_strip_and_interpolation_seeds_follow",
    },
    "test_cli.py": {"test_invert_verb_saves_the_latent_and_prints_mae_last"},
    "test_zip_limits.py": {"test_a_header_that_lies_about_its_size_is_reported_and_the_read_stays_bounded"},
    "test_models_r3.py": {"test_rpgan_with_r1_and_r2_trains_and_its_checkpoints_draw_the_same_faces"},
    "test_page_dataset_curate.py": {
        "test_curate_shows_planted_duplicates_and_blur_and_saves_what_is_kept", "test_nothing_left_is_refused_and_nothing_written",
        "test_the_synthetic_set_is_curated_as_it_is_on_disk",
    },
}
SLOW_TESTS = {m: STARTS_A_PROCESS.get(m, set()) | TAKES_LONG.get(m, set()) for m in {*STARTS_A_PROCESS, *TAKES_LONG}}


# What each test file costs, in seconds of one pytest-xdist worker (the sum of its tests' setup,
# call and teardown in `pytest -n 2 --dist loadfile --durations=0`, on a 2-core machine under load:
# only the order matters). The files are handed to the workers costliest first, so that the two
# finish together instead of one starting a long browser file when the other is done.
# A file not listed counts as DEFAULT_FILE_SECONDS, or SLOW_FILE_SECONDS if in SLOW_MODULES.
FILE_SECONDS = {
    "test_torchrun_stop.py": 450, "test_browser_flows.py": 440, "test_browser_pages.py": 400, "test_browser_runs.py": 375,
    "test_page_train_runs.py": 305, "test_train.py": 235, "test_browser.py": 220, "test_reliability.py": 200,
    "test_failure_paths.py": 175, "test_browser_generate.py": 150, "test_metrics.py": 140, "test_jobs.py": 140,
    "test_browser_own_data.py": 135, "test_generate.py": 135, "test_realism.py": 115, "test_gpu_run.py": 100,
    "test_pages.py": 95, "test_model_card.py": 90, "test_explore.py": 85, "test_cli.py": 75, "test_data.py": 75,
    "test_browser_deeplink.py": 70, "test_bench.py": 60, "test_page_generate_limits.py": 50,
    "test_page_compare.py": 50, "test_runs_compare.py": 45, "test_zip_limits.py": 40, "test_compile_cost.py": 5,
}
DEFAULT_FILE_SECONDS, SLOW_FILE_SECONDS = 20, 150


def file_seconds(path: Path) -> int:
    default = SLOW_FILE_SECONDS if path.stem in SLOW_MODULES else DEFAULT_FILE_SECONDS
    return FILE_SECONDS.get(path.name, default)


def pytest_configure(config):
    # xdist's loadfile hands out files with the most tests first unless told to keep the order
    # below (costliest first); the option exists only where pytest-xdist is installed
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    for module, names in SLOW_TESTS.items():
        source = (ROOT / "tests" / module).read_text()
        if missing := sorted(n for n in names if f"def {n}(" not in source):
            raise pytest.UsageError(f"tests/conftest.py marks tests slow that {module} no longer has: {', '.join(missing)}")
    if unknown := sorted(n for n in FILE_SECONDS if not (ROOT / "tests" / n).exists()):
        raise pytest.UsageError(f"tests/conftest.py lists the cost of test files that are gone: {', '.join(unknown)}")
    for item in items:
        module = item.path.name
        if item.path.stem in SLOW_MODULES or item.originalname in SLOW_TESTS.get(module, ()):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: -file_seconds(item.path))  # stable: a file's tests keep their order


@pytest.fixture(autouse=True)
def animegan_home(tmp_path_factory, monkeypatch):
    """Every test writes into its own home folder, never into ~/.animegan."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ANIMEGAN_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_zip():
    if not SHARED_ZIP.exists():
        pytest.skip(f"real data set not present at {SHARED_ZIP} (only on developer machines)")
    return SHARED_ZIP


@pytest.fixture(scope="session")
def real64(shared_zip, tmp_path_factory):
    """The real 30,000-face zip prepared at 64 px once per test session (about half a minute on 2
    cores), in a home folder that every pytest-xdist worker of the session shares (the first to
    get here prepares it, under a file lock; the others read its cache). Returns (data, home)."""
    from animegan.data import prepare

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/popen-gwK: the workers' common folder
    home = root / "real64-home"
    with open(root / "real64.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ANIMEGAN_HOME", str(home))
            data = prepare(shared_zip, 64)
    return data, home
