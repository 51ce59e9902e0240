"""Exact, fast PNG reading (libpng through torchvision.io; bit-identical to PIL, about twice as fast).

Every failure is a ``DataError`` naming the file and saying how to repair it.
"""
from __future__ import annotations

import os
import re

import torch

from segbench.errors import DataError
from segbench.lazy_torchvision import torchvision_io

_REPAIR = ("re-extract it from the dataset archive (for a generated dataset, delete its folder so it"
           " is generated again)")
_CPP_LOCATION = re.compile(r"^.*?\.cpp:\d+,\s*")


def _read_bytes(path: str | os.PathLike) -> torch.Tensor:
    try:
        return torchvision_io().read_file(os.fspath(path))
    except RuntimeError:
        pass
    # torchvision's message is terse; Python's open() tells missing, forbidden and empty files apart.
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist (was it deleted or moved after the dataset was listed?)") from None
    except PermissionError:
        raise DataError(f"permission denied reading {path}: make it readable (chmod a+r) for this user") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, expected a PNG file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise DataError(f"{path} is empty (0 bytes), probably an interrupted copy or extraction: {_REPAIR}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def read_png(path: str | os.PathLike, *, mode="UNCHANGED") -> torch.Tensor:
    """Decode the PNG at ``path`` into a ``(C, H, W)`` tensor (``uint8``, or ``uint16`` for 16-bit files);
    ``mode``: a ``torchvision.io.ImageReadMode`` or its name (``RGB``, ``GRAY``, ...)."""
    data = _read_bytes(path)
    io = torchvision_io()
    try:
        return io.decode_png(data, mode=io.ImageReadMode[mode] if isinstance(mode, str) else mode)
    except RuntimeError as exc:
        reason = _CPP_LOCATION.sub("", str(exc)).strip()
        raise DataError(f"{path} is not a readable PNG, probably truncated or corrupted ({reason}):"
                        f" {_REPAIR}") from None


def read_rgb_png(path: str | os.PathLike) -> torch.Tensor:
    """An 8-bit RGB image ``(3, H, W)`` ``uint8``; grey or palette files are expanded, alpha dropped (as PIL's
    ``convert("RGB")``)."""
    image = read_png(path, mode="RGB")
    if image.dtype != torch.uint8:
        raise DataError(f"{path} is a 16-bit image; expected an 8-bit RGB PNG")
    return image


def read_label_png(path: str | os.PathLike) -> torch.Tensor:
    """A single-channel 8-bit label image ``(H, W)`` ``uint8``, values as stored (palette files give indices)."""
    label = read_png(path, mode="UNCHANGED")
    if label.shape[0] != 1:
        raise DataError(
            f"{path} has {label.shape[0]} channels, but a label file must be a single-channel (mode L) PNG of"
            " class ids. This looks like a colour visualisation (a *_color.png); use the *_labelIds.png files.")
    if label.dtype != torch.uint8:
        raise DataError(
            f"{path} is a 16-bit PNG, but a label file must be 8-bit class ids. This looks like an instance"
            " map (a *_instanceIds.png); use the *_labelIds.png files.")
    return label[0]
