import pytest

from tests.slurm.cluster import SlurmUnavailable, ensure_installed, start_local_slurm


def shipped_recipe_resources() -> tuple[int, int]:
    """The most CPUs and GPUs one node must offer for any shipped recipe's job, as its slurm: section asks."""
    from segbench_jobs.slurm_config import slurm_config
    from segbench_jobs.stages import find_recipes
    from segbench.recipe.load import load_recipe
    from tests.conftest import REPO

    cpus, gpus = 1, 0
    for path in find_recipes(REPO / "recipes"):
        config = slurm_config(load_recipe(path, smoke=True).data)
        cpus = max(cpus, config.tasks_per_node * (config.cpus_per_task or 1))
        gpus = max(gpus, config.gpus_per_node)
    return cpus, gpus


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A single-node Slurm cluster on localhost for the whole session (installed with apt-get if missing).

    The node advertises the CPUs and GPUs the shipped recipes ask for, so their jobs are submitted as written.
    """
    try:
        ensure_installed()
    except SlurmUnavailable as exc:
        pytest.skip(f"no local Slurm: {exc}")
    cpus, gpus = shipped_recipe_resources()
    cluster = start_local_slurm(tmp_path_factory.mktemp("slurm"), cpus=cpus, gpus=gpus)
    yield cluster
    cluster.stop()
