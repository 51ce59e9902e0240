"""benchmarks/gpu_check.sh on a machine without a GPU: it says so and succeeds, measuring nothing."""
import os
import subprocess
import sys

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
