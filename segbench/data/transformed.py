"""Training items: a base dataset through a random pipeline, reproducible from (seed, epoch, index).

Each item draws its randomness from its own generator seeded by a hash of (seed, epoch, index),
so a batch does not depend on the number of DataLoader workers, on which worker loads it, or on
what was loaded before; no worker seeding is needed.
"""
from __future__ import annotations

import hashlib
from functools import partial

import torch

from segbench.data.decoded_cache import DecodedCache
from segbench.data.reading import failing_file, item_path, read_item
from segbench.errors import DataError
from segbench.transforms import Pipeline, for_dataset


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` (stable across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator that drives the augmentation of item ``index`` in ``epoch``."""
    return torch.Generator().manual_seed(derived_seed("item", seed, epoch, index))


def epoch_permutation(n: int, *, seed: int, epoch: int) -> list[int]:
    """The order of ``n`` items in ``epoch``: a function of ``(seed, epoch)`` only."""
    generator = torch.Generator().manual_seed(derived_seed("order", seed, epoch))
    return torch.randperm(n, generator=generator).tolist()


class SameSize:
    """Refuses an item whose size differs from the first one this process read: items batched together
    must share a size, and torch's own error would name neither file."""

    def __init__(self, *, fix: str):
        self.fix, self._reference = fix, None  # (index, size)

    def check(self, dataset, index: int, produced: str, *tensors: torch.Tensor) -> None:
        sizes = tuple(tuple(t.shape[-2:]) for t in tensors)
        if self._reference is None:
            self._reference = (index, sizes)
        first, expected = self._reference
        if sizes != expected:
            shown = " and ".join(f"{h}x{w}" for h, w in sizes)
            wanted = " and ".join(f"{h}x{w}" for h, w in expected)
            raise DataError(f"{item_path(dataset, index)} {produced} {shown}, but {item_path(dataset, first)} as"
                            f" {wanted}: images batched together must share a size. {self.fix}")


class SeededShuffleSampler(torch.utils.data.Sampler[int]):
    """Yields all ``n`` indices in the order :func:`epoch_permutation` gives for the current epoch.

    Nothing is dropped here; give the DataLoader ``drop_last=True`` to drop the last incomplete batch.
    """

    def __init__(self, n: int, *, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(epoch_permutation(self.n, seed=self.seed, epoch=self.epoch))


class TransformedDataset(torch.utils.data.Dataset):
    """``base[i]`` (``uint8 (3, H, W)``, ``uint8 (H, W)``) through ``pipeline``, giving
    (``float32 (3, h, w)``, ``int64 (h, w)``).

    Item ``i`` of epoch ``e`` is a function of ``(seed, e, i)`` and ``base[i]`` alone. DataLoader
    workers copy the dataset when an iterator starts: call :meth:`set_epoch` before ``iter(loader)``,
    and do not use ``persistent_workers`` (their copies would keep the old epoch).
    Padding uses ``base.info.ignore_index`` when the base dataset declares one, and masks holding other
    values than its classes and that index are refused. An item the
    pipeline rejects raises ``DataError`` naming ``base.image_path(i)`` when the base has it.
    With ``keep_decoded`` (for a process that reads its own data) a small split is decoded only once
    (:class:`DecodedCache`), unless the base dataset says ``keep_decoded = False``.
    """

    def __init__(self, base, pipeline: Pipeline, *, seed: int, same_size: bool = False, keep_decoded: bool = False):
        pipeline = for_dataset(pipeline, base)
        self.base, self.pipeline, self.seed, self.epoch = base, pipeline, seed, 0
        self._read = DecodedCache(base).__getitem__ if keep_decoded and getattr(base, "keep_decoded", True) \
            else partial(read_item, base)
        # Items batched together must share a size: compare each with the first one this process read.
        self._sizes = SameSize(fix="Add a random_scale_crop (or resize) step to data.train_transforms, or set"
                                   " trainer.batch_size: 1.") if same_size else None

    def _transform(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._read(index)
        try:
            return self.pipeline(image, mask, item_generator(self.seed, self.epoch, index))
        except DataError as exc:
            raise DataError(f"{failing_file(self.base, index, exc)}: {exc}") from None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._transform(index)
        if self._sizes is not None:
            self._sizes.check(self.base, index, "comes out of data.train_transforms as", image)
        return image, mask
