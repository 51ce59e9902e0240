"""One cache folder for everything segbench regenerates: SEGBENCH_CACHE, else XDG_CACHE_HOME/segbench, else ~/.cache."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segbench.cache import cache_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("environ, expected", [
    ({"SEGBENCH_CACHE": "/data/sb", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/data/sb"),
    ({"XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/segbench"),
    ({"SEGBENCH_CACHE": "", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/segbench"),  # empty = unset
    ({"XDG_CACHE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.cache/segbench"),  # the XDG spec ignores it
    ({"HOME": "/home/u"}, "/home/u/.cache/segbench"),
    ({"SEGBENCH_CACHE": "~/c", "HOME": "/home/u"}, "/home/u/c"),
])
def test_cache_folder_order(monkeypatch, environ, expected):
    for name in ("SEGBENCH_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", environ["HOME"])
    assert cache_dir(environ) == Path(expected)


def test_jobs_and_synthetic_data_use_the_xdg_cache(tmp_path, monkeypatch):
    """Slurm jobs are given the emitting command's cache folder; the synthetic data lands in the same one."""
    from segbench_plugins.synthetic_city import SyntheticCityConfig, tree_root

    env = {k: v for k, v in os.environ.items() if k != "SEGBENCH_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    result = subprocess.run([str(Path(sys.executable).with_name("segbench")), "emit-slurm",
                             str(REPO / "recipes" / "quickstart.yaml"), "--out", str(tmp_path / "jobs")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    scripts = "".join(p.read_text() for p in (tmp_path / "jobs").rglob("*.sbatch"))
    assert f"export SEGBENCH_CACHE={tmp_path / 'xdg' / 'segbench'}" in scripts
    monkeypatch.delenv("SEGBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tree_root(SyntheticCityConfig()).parent == tmp_path / "xdg" / "segbench" / "synthetic_city"


def test_an_empty_home_falls_back_to_the_users_home_not_the_root(monkeypatch):
    import pwd

    monkeypatch.setenv("HOME", "")
    expected = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "segbench"
    assert cache_dir({"HOME": ""}) == expected != Path("/.cache/segbench")
