"""A user mistake raised in a DataLoader worker reaches the main process as that mistake, not a traceback; the
signals that stop a run are left to the main process, however the workers were started."""
import os
import signal

import pytest
import torch

from segbench.data.loader import data_loader
from segbench.errors import DataError, DataWorkerError


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        if index == 2:
            raise DataError("images/2.png is not a readable PNG; re-extract it")
        return torch.full((2,), index)


@pytest.mark.parametrize("batch_size", [2, None])
def test_a_worker_error_keeps_its_message_and_names_the_worker(batch_size):
    loader = data_loader(Items(), batch_size=batch_size, num_workers=1)
    with pytest.raises(DataWorkerError) as caught:
        list(loader)
    assert str(caught.value) == ("images/2.png is not a readable PNG; re-extract it\n"
                                 "(raised in DataLoader worker process 0)")
    assert caught.value.exit_code == 2 and caught.value.worker == 0


def test_in_process_errors_and_batches_are_unchanged():
    assert [batch.tolist() for batch in data_loader(Items(), batch_size=2, num_workers=0, sampler=[0, 1, 3])] \
        == [[[0, 0], [1, 1]], [[3, 3]]]
    with pytest.raises(DataError, match="not a readable PNG"):
        list(data_loader(Items(), batch_size=2, num_workers=0))


class SignalDispositions(torch.utils.data.Dataset):
    """Each item: the worker's SIGINT, SIGTERM and SIGUSR1 handlers, and a number its init function set."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        handlers = [signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)]
        return torch.tensor([int(handler is signal.SIG_IGN) for handler in handlers] + [int(os.environ["INIT"])])


def _mark_initialised(worker_id):
    os.environ["INIT"] = str(10 + worker_id)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_leave_ctrl_c_and_preemption_to_the_main_process_and_run_the_callers_init(start):
    loader = data_loader(SignalDispositions(), batch_size=None, num_workers=1, multiprocessing_context=start,
                         worker_init_fn=_mark_initialised)
    assert [item.tolist() for item in loader] == [[1, 1, 1, 10], [1, 1, 1, 10]]
