"""A run's lock under Slurm: a job that left the queue no longer holds its run, a requeued job takes back its own
run from a failed node, and a run trained by another queued job is waited for, not failed (segbench.slurm_job)."""
import json
import os
import stat

import pytest

from segbench.engine.rundir import RunDir, RunLock
from segbench.errors import RunHeldByJobError, RunLockedError


@pytest.fixture
def run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    return run


@pytest.fixture
def slurm(monkeypatch, tmp_path):
    """This process in Slurm job 456 of a job script, with an ``squeue`` that lists the jobs in ``queue``."""
    queue = tmp_path / "queue"
    queue.write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    # squeue -h -j JOB -o %T: the job's state while it is queued; an ended job prints nothing.
    squeue.write_text(f'#!/bin/sh\ngrep -x "$3 .*" {queue} | cut -d" " -f2\n')
    squeue.chmod(squeue.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "456")
    wait_file = tmp_path / "out" / ".job.wait-456"
    wait_file.parent.mkdir()
    monkeypatch.setenv("SEGBENCH_WAIT_FILE", str(wait_file))
    return queue, wait_file


def held_by(run, job, host="node-7"):
    run.lock_file.write_text(json.dumps({"host": host, "pid": 4242, "slurm_job": job}))


def test_a_run_of_another_queued_job_is_waited_for_and_that_job_named(run, slurm):
    queue, wait_file = slurm
    queue.write_text("123_4 RUNNING\n")
    held_by(run, "123_4")
    with pytest.raises(RunHeldByJobError, match=r"Slurm job 123_4.*requeued to start when job 123_4 has ended") as err:
        RunLock(run).acquire()
    assert err.value.exit_code == 75  # as a preempted run: the job script requeues it
    assert wait_file.read_text() == "123_4\n"
    assert json.loads(run.lock_file.read_text())["slurm_job"] == "123_4"  # the holder keeps its lock


def test_outside_a_job_script_the_holding_job_is_named_in_the_usual_error(run, slurm, monkeypatch):
    queue, wait_file = slurm
    monkeypatch.delenv("SEGBENCH_WAIT_FILE")
    queue.write_text("123 PENDING\n")
    held_by(run, "123")
    with pytest.raises(RunLockedError, match=r"in use by process 4242 on host node-7 \(Slurm job 123\)") as err:
        RunLock(run).acquire()
    assert err.value.exit_code == 2 and not wait_file.exists()


@pytest.mark.parametrize("listed", ["999 RUNNING\n", "123 NODE_FAIL\n", "123 COMPLETED\n"])
def test_the_lock_of_a_job_that_left_the_queue_is_taken_over(run, slurm, listed):
    queue, wait_file = slurm
    queue.write_text(listed)
    held_by(run, "123")  # a node crash killed it: its lock stayed behind
    lock = RunLock(run).acquire()
    assert json.loads(run.lock_file.read_text())["slurm_job"] == "456" and not wait_file.exists()
    assert RunLock(run).holder() is None  # this process holds it now
    lock.release()


def test_a_requeued_job_takes_back_its_own_run_from_the_node_it_ran_on(run, slurm):
    queue, _ = slurm
    queue.write_text("456 RUNNING\n")
    held_by(run, "456", host="failed-node")
    RunLock(run).acquire().release()


@pytest.mark.parametrize("job", ["123; rm -rf ~", 123, "", "12_x"])
def test_a_malformed_job_in_a_lock_is_no_job(run, slurm, job):
    held_by(run, job)
    with pytest.raises(RunLockedError, match="in use by process 4242 on host node-7 .lock file") as err:
        RunLock(run).acquire()
    assert not isinstance(err.value, RunHeldByJobError) and not slurm[1].exists()


def test_without_squeue_a_lock_of_another_host_is_never_taken_over(run, slurm, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.delenv("SEGBENCH_WAIT_FILE")
    held_by(run, "123")
    with pytest.raises(RunLockedError, match="Slurm job 123"):
        RunLock(run).acquire()
    assert "Slurm job 123" in RunLock(run).holder()  # the report commands say it is still training
