"""Results do not depend on the cache: the same recipe and seed give bitwise-identical weights and metrics
whether the data and class histogram were already cached or not, with any number of DataLoader workers,
and after an interruption."""
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from segbench.engine.checkpoint import load_checkpoint
from tests.bad_inputs.harness import cli_env, segbench_command
from tests.test_engine import assert_same_weights, metric_records, registries, train, weights, write_recipe  # noqa: F401

WEIGHTED = "class_weighting: {name: enet}\n"


def _toy_run(folder, registries, monkeypatch, cache, *overrides):
    monkeypatch.setenv("SEGBENCH_CACHE", str(cache))
    return train(folder, registries, overrides, runs=f"runs-{len(list(folder.glob('runs-*')))}")


def test_cold_and_warm_cache_and_worker_count_give_identical_runs(tmp_path, registries, monkeypatch):
    """The class histogram is counted through a DataLoader on a cold cache only; it must not move the init."""
    from tests import engine_plugin

    write_recipe(tmp_path, text=engine_plugin.RECIPE + WEIGHTED)
    cold = _toy_run(tmp_path, registries, monkeypatch, tmp_path / "cache")
    assert list((tmp_path / "cache" / "histograms").iterdir()), "the first run did not fill the cache"
    torch.rand(1000)  # whatever else ran in the process before
    warm = _toy_run(tmp_path, registries, monkeypatch, tmp_path / "cache")
    workers = _toy_run(tmp_path, registries, monkeypatch, tmp_path / "cache2", "trainer.num_workers=2")
    for other in (warm, workers):
        assert_same_weights(weights(cold), weights(other))
        assert_same_weights(weights(cold, "best"), weights(other, "best"))
        assert metric_records(cold) == metric_records(other)
        assert cold.read_results().confusion_matrix == other.read_results().confusion_matrix


# A random-initialised U-Net on a tiny synthetic city, ENet class weights: what the quickstart does, in seconds.
SYNTH = """\
seed: 3
model: {{name: unet, width: 4}}
data:
  dataset: {{name: synthetic_city, train: 12, val: 4, train_extra: 0, size: [32, 64], seed: 5}}
  train: {{split: train}}
  select: {{split: val}}
  report: {{split: val}}
  train_transforms: [{{name: hflip, p: 0.5}}, {{name: normalize}}]
loss: {{name: cross_entropy}}
class_weighting: {{name: enet}}
optimizer: {{name: adamw, lr: 3.0e-3}}
trainer: {{epochs: 3, batch_size: 2, num_workers: {workers}, precision: fp32, log_every: 1}}
"""


def _fingerprint(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((run / "results.json").read_text())
    return {"metrics": [{k: v for k, v in r.items() if k != "images_per_s"} for r in records],
            "weights": load_checkpoint(run / "checkpoints" / "last.pt")["model"],
            "scores": {k: results[k] for k in ("mIoU", "confusion_matrix", "best_epoch", "class_weights")}}


def _assert_same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"] and a["scores"] == b["scores"]
    assert_same_weights(a["weights"], b["weights"])


@pytest.mark.slow
def test_the_command_gives_identical_results_cold_warm_other_workers_and_resumed(tmp_path):
    def run(name, cache, workers=0, signal_after_records=None):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "r.yaml").write_text(SYNTH.format(workers=workers))
        env = cli_env(SEGBENCH_CACHE=str(tmp_path / cache))
        command = segbench_command("run", "r.yaml", "--runs-dir", "runs")
        if signal_after_records is None:
            result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
        else:  # interrupted once, then resumed on a cold cache (the job moved to another node)
            process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            metrics = lambda: list(folder.glob("runs/*/metrics.jsonl"))  # noqa: E731
            deadline = time.monotonic() + 600
            while not (metrics() and metrics()[0].read_text().count('"train"') >= signal_after_records):
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=120) == 75
            env["SEGBENCH_CACHE"] = str(tmp_path / f"{cache}-other-node")
            result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0 and "resuming from" in result.stderr, result.stderr[-3000:]
        (run_dir,) = (folder / "runs").iterdir()
        return _fingerprint(run_dir)

    cold = run("cold", "cache")
    assert (tmp_path / "cache" / "synthetic_city").is_dir() and (tmp_path / "cache" / "histograms").is_dir()
    _assert_same(cold, run("warm", "cache"))
    _assert_same(cold, run("resumed", "fresh", signal_after_records=4))
    workers = run("workers", "cache-w", workers=2)  # another recipe hash: compare what it computed
    _assert_same(cold, workers)
