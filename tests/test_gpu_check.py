"""benchmarks/gpu_check.sh on a machine without a GPU: it says so and succeeds, measuring nothing."""
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_gpu_check_without_a_gpu_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU, as on a CPU-only machine
    completed = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out), sys.executable],
                               env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "found no GPU" in completed.stdout
    assert list(out.iterdir()) == []  # nothing measured, nothing written


def test_gpu_check_needs_an_output_folder():
    completed = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 2 and "usage" in completed.stderr


def _gpu_check(*args, cwd=None):
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), *map(str, args)], cwd=cwd,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=120)


def test_help_describes_the_script_and_writes_nothing(tmp_path):
    completed = _gpu_check("--help", cwd=tmp_path)
    assert completed.returncode == 0 and "bash benchmarks/gpu_check.sh OUT [PYTHON]" in completed.stdout
    assert list(tmp_path.iterdir()) == []  # not a folder named --help


@pytest.mark.parametrize("out, python, message", [
    ("a-file", None, "OUT_DIR {tmp}/a-file is not a folder this user can write"),
    ("a-file/below", None, "OUT_DIR {tmp}/a-file/below is not a folder this user can write"),
    ("out", "no/such/python", "PYTHON no/such/python is not an executable file"),
    ("out", "/bin/false", "/bin/false cannot import torch"),
    ("--out", None, "unknown option --out"),
])
def test_a_bad_folder_or_interpreter_is_an_error_not_a_machine_without_gpu(tmp_path, out, python, message):
    (tmp_path / "a-file").write_text("keep me")
    target = out if out.startswith("-") else tmp_path / out
    completed = _gpu_check(target, *([python] if python else []), cwd=tmp_path)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert message.format(tmp=tmp_path) in completed.stderr
    assert "found no GPU" not in completed.stdout
    assert (tmp_path / "a-file").read_text() == "keep me"


def test_a_relative_interpreter_is_found_from_where_the_command_runs(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "py").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (tmp_path / "bin" / "py").chmod(0o755)
    completed = _gpu_check(tmp_path / "out", "bin/py", cwd=tmp_path)
    assert completed.returncode == 0 and f"with {tmp_path}/bin/py" in completed.stdout, completed.stderr
