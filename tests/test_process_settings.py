"""The `segbench` command limits OpenMP spinning before torch loads, unless the user chose a wait policy."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SHOW_ENV = ("import os, sys, segbench.process as process; process.limit_openmp_spinning(); "
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



SEGBENCH = Path(sys.executable).with_name("segbench")  # the installed console script


def _fresh_env(**extra):
    """As a user's shell has it: no allocator settings yet, so the command re-executes itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "SEGBENCH_NO_REEXEC", "PYTHONPATH"))}
    return {**env, **extra}


@pytest.fixture(params=["folder", "module"])
def shadowing_cwd(request, tmp_path):
    """A working directory holding something named ``segbench`` that is not the package."""
    if request.param == "folder":
        (tmp_path / "segbench").mkdir()  # e.g. the parent folder of a clone
    else:
        (tmp_path / "segbench.py").write_text("raise SystemExit('the wrong segbench was imported')\n")
    return tmp_path


def test_the_installed_command_works_from_a_folder_that_shadows_the_package(shadowing_cwd):
    for args, expected in ((["--version"], "segbench "), (["list", "losses"], "cross_entropy")):
        result = subprocess.run([str(SEGBENCH), *args], cwd=shadowing_cwd, env=_fresh_env(), capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
        assert "Traceback" not in result.stderr


def test_the_command_slurm_jobs_run_works_from_a_folder_that_shadows_the_package(shadowing_cwd):
    from segbench.process import command_invocation

    result = subprocess.run([*command_invocation(sys.executable), "--version"], cwd=shadowing_cwd,
                            env=_fresh_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("segbench "), result.stderr


PROBE = """\
import json, os, sys
from segbench.process import reexec_with_allocator_settings

def main():
    print(json.dumps({"env": {k: os.environ.get(k) for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")},
                      "argv": sys.argv[1:], "path": sys.path, "warnings": sys.warnoptions}))
    return 3

if __name__ == "__main__":
    reexec_with_allocator_settings(entry="probe_entry:main")
"""


def test_the_reexec_keeps_arguments_path_and_flags_and_sets_the_allocator(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "probe_entry.py").write_text(PROBE)
    (tmp_path / "segbench").mkdir()
    env = _fresh_env(PYTHONPATH=os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1])]))
    result = subprocess.run([sys.executable, "-W", "ignore::UserWarning", "-m", "probe_entry", "a b", "--x=1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr  # the entry's return value is the exit status
    seen = json.loads(result.stdout)
    assert seen["env"] == {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
    assert seen["argv"] == ["a b", "--x=1"]
    assert seen["warnings"] == ["ignore::UserWarning"]
    assert seen["path"][0] == str(tmp_path)  # `python -m` put the cwd first; the new process keeps that path
