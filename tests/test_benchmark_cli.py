"""The benchmark scripts' command lines: a bad argument is a usage error (exit 2) that writes nothing."""
import argparse
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import common  # noqa: E402


def bench(script, *args, results_dir, cwd=None):
    env = {**os.environ, "SEGBENCH_BENCHMARK_RESULTS": str(results_dir)}
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script, args, message", [
    ("bench_train_step.py", ["--repetitions", "0"], "argument --repetitions: 0 is too few; give 1 or more"),
    ("bench_eval.py", ["--warmup", "-1"], "argument --warmup: -1 is too few; give 0 or more"),
    ("bench_numerics.py", ["--workloads", "bogus"], "--workloads: no 'bogus'; choose from 'quickstart unet"),
    ("bench_allocator.py", ["--workloads", "deeplab", "unet"], "--workloads: no 'unet'; choose from"),
    ("bench_decoded_cache.py", ["--epochs", "0"], "argument --epochs: 0 is too few; give 1 or more"),
    ("bench_optimizer.py", ["--steps", "x"], "argument --steps: 'x' is not a whole number"),
    ("bench_slow_cpu_estimate.py", ["--epochs", "6", "2"], "--epochs 6 2: the first must be the shorter"),
])
def test_a_bad_argument_is_a_usage_error_that_writes_no_result(tmp_path, script, args, message):
    results = tmp_path / "results"
    completed = bench(script, *args, results_dir=results)
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert message in completed.stderr and "Traceback" not in completed.stderr
    assert not results.exists()


def test_a_workload_is_named_by_its_start_and_an_unknown_one_lists_the_names():
    parser = argparse.ArgumentParser()
    names = ["quickstart unet 16-24-32-48-64, skip add", "deeplabv3plus"]
    assert common.choose(parser, "--workloads", None, names) == names
    assert common.choose(parser, "--workloads", ["quickstart"], names) == names[:1]
    assert common.choose(parser, "--workloads", ["deeplabv3plus", "d"], names) == names[1:]
    with pytest.raises(SystemExit) as stop:
        common.choose(parser, "--workloads", ["unet"], names)
    assert stop.value.code == 2


def test_help_shows_the_whole_description(tmp_path):
    completed = bench("bench_allocator.py", "--help", results_dir=tmp_path)
    assert completed.returncode == 0
    # the first sentence runs over two lines of the docstring; --help used to stop after the first
    second_line = (REPO / "benchmarks" / "bench_allocator.py").read_text().split('"""')[1].splitlines()[1]
    assert second_line.strip() in completed.stdout


def _empty(run):
    return run


def _unfinished(run):
    (run / "recipe.yaml").write_text("seed: 0\n")
    return run


def _cut_short(run):
    (run / "results.json").write_text('{"mIoU": 0.')
    return _unfinished(run)


@pytest.mark.parametrize("make, message", [
    (_empty, "is not a run directory: it has no recipe.yaml"),
    (_unfinished, "has no results.json: the run is not finished"),
    (_cut_short, "results.json is not valid JSON"),
    (lambda run: run / "missing", "does not exist; give a run directory"),
])
def test_run_arithmetic_names_what_is_wrong_with_its_argument(tmp_path, make, message):
    (tmp_path / "run").mkdir()
    target = make(tmp_path / "run")
    completed = bench("run_arithmetic.py", target, results_dir=tmp_path / "results")
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert message in completed.stderr and "Traceback" not in completed.stderr
