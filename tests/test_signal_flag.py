"""SIGTERM/SIGUSR1: before the training loop a run stops at once with the requeue status (nothing to save yet,
and a scheduler's grace period may be shorter than the preparation); inside it, the signal is answered at the
next step boundary, and so is a first Ctrl-C (a second one stops at once)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from segbench.engine.trainer import PREEMPTED_EXIT_CODE, SignalFlag

# A process preparing a run: a worker pool busy on long tasks, then the signal.
PREPARING = """
import multiprocessing, os, signal, sys, time
from segbench.engine.trainer import SignalFlag

def slow(_):
    time.sleep(30)

with SignalFlag():
    pool = multiprocessing.get_context("fork").Pool(2)
    pool.map_async(slow, range(4))
    print(",".join(str(child.pid) for child in multiprocessing.active_children()), flush=True)
    os.kill(os.getpid(), signal.{name})
    time.sleep(30)
sys.exit(0)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_before_training_a_signal_stops_at_once_with_its_workers(name):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PREPARING.replace("{name}", name)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == PREEMPTED_EXIT_CODE, done.stderr
    assert time.monotonic() - started < 20 and "before training started" in done.stderr
    time.sleep(0.5)
    for pid in map(int, done.stdout.strip().split(",")):  # the workers went with it (gone, or a zombie)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                assert stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            pass


def test_inside_the_training_loop_a_signal_is_recorded_for_the_next_step():
    with SignalFlag() as flag:
        flag.immediate = False
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.received == signal.SIGTERM


def test_a_forked_worker_leaves_the_signal_to_its_parent():
    with SignalFlag():
        child = os.fork()
        if child == 0:  # a DataLoader worker inherits the handler
            os.kill(os.getpid(), signal.SIGTERM)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_inside_the_training_loop_a_first_ctrl_c_is_recorded_and_a_second_stops_at_once():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    with SignalFlag() as flag:
        with pytest.raises(KeyboardInterrupt):  # before the loop: nothing to save, Python's own answer
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        flag.answer_at_step_boundaries()
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_after_a_sigterm_is_still_a_first_one():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with SignalFlag() as flag:
            flag.answer_at_step_boundaries()
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # recorded, not a second Ctrl-C
            assert flag.received == signal.SIGTERM and flag.interrupts == 1
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stays_ignored_where_the_caller_ignores_it():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # `segbench run ... &` in a script
    try:
        with SignalFlag() as flag:
            flag.answer_at_step_boundaries()
            os.kill(os.getpid(), signal.SIGINT)
            assert flag.received is None
    finally:
        signal.signal(signal.SIGINT, previous)
