"""Exact, fast PNG reading (libpng through torchvision.io; bit-identical to PIL, about twice as fast).

Every failure is a ``DataError`` naming the file and saying how to repair it.
"""
from __future__ import annotations

import os
import re
import struct

import attrs

import torch

from segbench.errors import DataError
from segbench.lazy_torchvision import torchvision_io

_REPAIR = ("re-extract it from the dataset archive (for a generated dataset, delete its folder so it"
           " is generated again)")
_CPP_LOCATION = re.compile(r"^.*?\.cpp:\d+,\s*")


def _read_bytes(path: str | os.PathLike) -> torch.Tensor:
    try:
        return torchvision_io().read_file(os.fspath(path))
    except RuntimeError:  # its message is terse: read it again to say why
        return torch.frombuffer(bytearray(_read_head(path, None)), dtype=torch.uint8)


def _read_head(path: str | os.PathLike, size: int | None) -> bytes:
    """The first ``size`` bytes of ``path`` (all with ``None``); a missing, forbidden or empty file is a
    ``DataError`` saying which (Python's open() tells them apart, torchvision's message does not)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read() if size is None else handle.read(size)
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
    return data


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


# What the readers refuse, as messages, for a decoded file and for a header alike (``png_pair_problem``).

def _image_problem(path, *, sixteen_bit: bool) -> str | None:
    return f"{path} is a 16-bit image; expected an 8-bit RGB PNG" if sixteen_bit else None


def _label_problem(path, *, channels: int, sixteen_bit: bool) -> str | None:
    if channels != 1:
        return (f"{path} has {channels} channels, but a label file must be a single-channel (mode L) PNG of class"
                " ids. This looks like a colour visualisation (a *_color.png); use the *_labelIds.png files.")
    if sixteen_bit:
        return (f"{path} is a 16-bit PNG, but a label file must be 8-bit class ids. This looks like an instance"
                " map (a *_instanceIds.png); use the *_labelIds.png files.")
    return None


def size_mismatch(image, image_size: tuple[int, int], label, label_size: tuple[int, int]) -> str | None:
    """The message for an image and its label of different (width, height), else ``None``."""
    if image_size == label_size:
        return None
    return (f"size mismatch: image {image} is {image_size[0]}x{image_size[1]} (width x height) but its label"
            f" {label} is {label_size[0]}x{label_size[1]}")


def read_rgb_png(path: str | os.PathLike) -> torch.Tensor:
    """An 8-bit RGB image ``(3, H, W)`` ``uint8``; grey or palette files are expanded, alpha dropped (as PIL's
    ``convert("RGB")``)."""
    image = read_png(path, mode="RGB")
    if problem := _image_problem(path, sixteen_bit=image.dtype != torch.uint8):
        raise DataError(problem)
    return image


def read_label_png(path: str | os.PathLike) -> torch.Tensor:
    """A single-channel 8-bit label image ``(H, W)`` ``uint8``, values as stored (palette files give indices)."""
    label = read_png(path, mode="UNCHANGED")
    if problem := _label_problem(path, channels=label.shape[0], sixteen_bit=label.dtype != torch.uint8):
        raise DataError(problem)
    return label[0]


_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> channels as decoded (a palette gives indices)


@attrs.frozen
class PngHeader:
    width: int
    height: int
    bit_depth: int
    channels: int


def read_png_header(path: str | os.PathLike) -> PngHeader:
    """Size, bit depth and channel count from the first 26 bytes of a PNG file, without decoding it."""
    head = _read_head(path, 26)
    if len(head) < 26 or not head.startswith(_SIGNATURE) or head[12:16] != b"IHDR" or head[25] not in _CHANNELS:
        raise DataError(f"{path} is not a PNG file (its first bytes are not a PNG header): {_REPAIR}")
    width, height = struct.unpack(">II", head[16:24])
    return PngHeader(width=width, height=height, bit_depth=head[24], channels=_CHANNELS[head[25]])


def png_pair_problem(image: str | os.PathLike, label: str | os.PathLike, *, same_size: bool = True) -> str | None:
    """What :func:`read_rgb_png` and :func:`read_label_png` would refuse in an image/label pair, from the files'
    headers alone (``None`` when nothing is wrong); ``same_size``: the two must have one size."""
    try:
        image_header, label_header = read_png_header(image), read_png_header(label)
    except DataError as exc:
        return str(exc)
    return (_image_problem(image, sixteen_bit=image_header.bit_depth == 16)
            or _label_problem(label, channels=label_header.channels, sixteen_bit=label_header.bit_depth == 16)
            or (size_mismatch(image, (image_header.width, image_header.height),
                              label, (label_header.width, label_header.height)) if same_size else None))
