"""DataLoaders whose worker processes report a user mistake as the mistake, not as a traceback in a string.

torch sends an exception raised in a worker back as its type name and formatted traceback only, so a
:class:`SegbenchError` (an unreadable image, a crop larger than the image) would reach the user as a
traceback. Here the worker catches it and hands it back as a value (:class:`WorkerFailure`) in place of
the batch; iterating the loader in the main process raises :class:`DataWorkerError` with the original
message and the worker that raised it. With ``num_workers=0`` errors are raised where they happen.
"""
from __future__ import annotations

import functools
import signal

import attrs
import torch
from torch.utils.data import DataLoader, get_worker_info
from torch.utils.data._utils.collate import default_collate, default_convert

from segbench.errors import DataWorkerError, SegbenchError


@attrs.frozen
class WorkerFailure:
    """A :class:`SegbenchError` raised in a DataLoader worker, as data that survives the trip back."""

    error_type: str
    message: str
    exit_code: int
    worker: int


class _Reporting(torch.utils.data.Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except SegbenchError as exc:
            worker = get_worker_info()
            if worker is None:
                raise
            return WorkerFailure(type(exc).__name__, str(exc), exc.exit_code, worker.id)


def _collate(items, *, combine):
    batch = items if isinstance(items, list) else [items]
    failure = next((item for item in batch if isinstance(item, WorkerFailure)), None)
    return failure if failure is not None else combine(items)


class _Loader:
    """Iterates a DataLoader and turns a worker's :class:`WorkerFailure` into :class:`DataWorkerError`."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if isinstance(batch, WorkerFailure):
                raise DataWorkerError(batch.message, worker=batch.worker, exit_code=batch.exit_code)
            yield batch


def _leave_stop_signals_to_the_parent(worker_id: int, then=None) -> None:
    """A worker forked from a run inherits its handlers, which leave SIGTERM, SIGUSR1 and Ctrl-C to the parent
    (it writes the checkpoint, then stops its workers); one started by spawn or forkserver (Python 3.14's default on
    Linux) would die of them mid-epoch, and take the run down before its checkpoint."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    if then is not None:
        then(worker_id)


def data_loader(dataset, **kwargs) -> _Loader:
    """``DataLoader(dataset, **kwargs)`` with worker errors reported as :class:`DataWorkerError`.

    Each loader draws its worker seeds from its own generator (default: seeded 0), never from torch's
    global one: loading data, such as counting a class histogram on a cold cache, cannot shift the
    random numbers of model initialisation or training.
    """
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    if kwargs.get("num_workers", 0) > 0:
        kwargs["worker_init_fn"] = functools.partial(_leave_stop_signals_to_the_parent,
                                                     then=kwargs.get("worker_init_fn"))
    combine = kwargs.pop("collate_fn", None) or (default_convert if kwargs.get("batch_size", 1) is None
                                                 else default_collate)
    # Functions of a module, not closures: workers started by spawn or forkserver receive them pickled.
    return _Loader(DataLoader(_Reporting(dataset), collate_fn=functools.partial(_collate, combine=combine), **kwargs))
