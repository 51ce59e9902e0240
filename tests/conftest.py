import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A shared 2-core machine makes timings noisy: property tests check values, not speed.
settings.register_profile("segbench", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          max_examples=60)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "segbench"))

REPO = Path(__file__).resolve().parents[1]

# Tests never pick up third-party plugins installed in the environment, nor the user's caches.
os.environ.setdefault("SEGBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    cache = os.environ.get("SEGBENCH_TEST_CACHE") or str(tmp_path_factory.mktemp("segbench-cache"))
    os.environ["SEGBENCH_CACHE"] = cache
    yield


@pytest.fixture(scope="session")
def registries():
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    return build_registries(make_plugin_manager(load_entry_points=False))


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    from segbench.cli import main

    def run(*args):
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:
            status = exc.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def results_record(**fields):
    """A ``ResultsRecord`` as a finished run writes it, with placeholder scores; ``fields`` replace any of them
    (for tests that need a finished run's results.json without training one)."""
    from segbench.records import EvaluationSettings, ResultsRecord

    defaults = dict(
        recipe="toy", recipe_hash="0" * 64, model="unet", strategy="scratch", initialisation="scratch",
        model_init="random", mIoU=0.5, pixel_accuracy=0.5, per_class_iou={"road": 0.5}, confusion_matrix=[[1, 0]],
        report_split=None, selection_split=None, selection_overlaps_report=False, report_images=1,
        evaluation=EvaluationSettings(mode="whole", flip=False, batch_size=1), checkpoint="best.pt",
        best_selection_mIoU=0.5, best_epoch=1, epochs=1, iterations=1, params=1, checkpoint_mb=0.1, device="cpu",
        precision="fp32", wall_time_s=1.0, resumed=False, class_weights=None, finished_at="2026-01-01T00:00:00+0000")
    return ResultsRecord(**{**defaults, **fields})


MINIMAL_RECIPE = """\
seed: 0
model: {name: unet, width: 8}
data:
  dataset: {name: synthetic_city}
  train: {split: train}
  select: {split: train, subset: {first: 2}}
  report: {split: val}
  train_transforms:
    - {name: hflip, p: 0.5}
    - {name: normalize}
loss: {name: cross_entropy}
optimizer: {name: adam, lr: 1.0e-3}
scheduler: {name: poly}
trainer: {epochs: 1, batch_size: 2}
"""


@pytest.fixture
def recipe_dir(tmp_path):
    (tmp_path / "_base").mkdir()
    (tmp_path / "_base" / "default.yaml").write_text(MINIMAL_RECIPE)
    return tmp_path


def ctrl_c_as_in_a_terminal():
    """``preexec_fn`` of a segbench process a test sends Ctrl-C: a shell starts background jobs with SIGINT ignored,
    the tests may run in one (`.ci/run &`), a child would inherit that, and segbench leaves an ignored Ctrl-C
    ignored; a terminal's Ctrl-C reaches a process whose SIGINT is not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
