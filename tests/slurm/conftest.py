import pytest

from tests.slurm.cluster import SlurmUnavailable, ensure_installed, start_local_slurm


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A single-node Slurm cluster on localhost for the whole session (installed with apt-get if missing)."""
    try:
        ensure_installed()
    except SlurmUnavailable as exc:
        pytest.skip(f"no local Slurm: {exc}")
    cluster = start_local_slurm(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()
