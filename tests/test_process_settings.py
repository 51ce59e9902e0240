"""The `segbench` command limits OpenMP spinning before torch loads, unless the user chose a wait policy."""
import os
import subprocess
import sys

import pytest

SHOW_ENV = ("import os, sys, segbench.cli as cli; cli._limit_openmp_spinning(); "
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")


def _child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOMP_", "OMP_WAIT"))}
    return {**env, **extra}


@pytest.mark.parametrize("extra, expected", [
    ({}, "10000 False"),  # set before torch is imported, so its OpenMP runtime reads it
    ({"GOMP_SPINCOUNT": "500"}, "500 False"),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, "None False"),  # the user's wait policy decides alone
])
def test_openmp_spin_is_short_unless_the_user_chose(extra, expected):
    out = subprocess.run([sys.executable, "-c", SHOW_ENV], env=_child_env(**extra), capture_output=True,
                         text=True, check=True).stdout.split()
    assert " ".join(out) == expected

