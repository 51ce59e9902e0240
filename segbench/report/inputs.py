"""What ``segbench predict`` was given: image files, folders of images (searched recursively), videos."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import attrs

from segbench.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


@attrs.frozen
class InputFile:
    """One file to predict. ``subfolder``: where its outputs go below ``--out`` (a folder input's
    tree is mirrored, so equal names in different sub-folders do not collide)."""

    path: Path
    kind: str  # "image" or "video"
    subfolder: Path = Path()
    from_folder: bool = False


def kind_of(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path.resolve() == folder or folder in path.resolve().parents)


def expand_inputs(paths: Sequence[Path], *, out: Path | None = None) -> list[InputFile]:
    """Files as given; folders replaced by the image and video files below them, sorted by path.

    Files under ``out`` (the output folder, when it lies inside an input folder) are left out: predicting
    again must not predict the previous predictions."""
    found: list[InputFile] = []
    out = Path(out).resolve() if out is not None else None
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and not _inside(p, out))
            if not files:
                raise DataError(f"folder {path} holds no image or video files (looked for"
                                f" {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}, recursively)")
            found += [InputFile(p, kind_of(p), p.parent.relative_to(path), True) for p in files]
        elif path.is_file():
            found.append(InputFile(path, kind_of(path)))
        else:
            raise DataError(f"{path} does not exist; give image files, video files or folders of images")
    return found
