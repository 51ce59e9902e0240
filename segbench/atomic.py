"""Files written atomically: a temp file beside the target, fsync, rename. A crash or a full disk leaves the
previous file intact, and concurrent readers never see half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from segbench.errors import SegbenchError


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, then rename it over ``path``.

    A crash or a full disk leaves the previous file intact; the temp file is removed on error.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())  # mkstemp makes 0o600; results are shared like any other file
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def new_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 without the bits of the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))


def check_writable(folder: Path, why: str) -> None:
    """Fail before any work when ``folder`` cannot take a new file; ``why`` says what would be written there."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".segbench-write-check.", dir=folder)
    except OSError as exc:
        raise SegbenchError(f"{folder} cannot be written ({exc.strerror or exc}), and {why}. Make it writable, or"
                            " copy the run folder to a writable place and give that path.") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: Path, option: str) -> None:
    """Fail before any work when the file ``path`` given with ``option`` could not be written: it is a folder,
    or a file stands where one of its folders would be made (the OS says only "File exists")."""
    path = Path(path)
    if path.is_dir():
        raise SegbenchError(f"{option} {path} is a folder; give a file path in it, or leave {option} out for the"
                            " default name.")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SegbenchError(f"{option} {path}: {ancestor} is a file, so no folder can be made there; choose"
                            " another place.")


def make_folder(folder: Path, option: str) -> None:
    """Create the output folder ``folder`` given with ``option`` (``--out``), or say why it cannot be."""
    if folder.exists() and not folder.is_dir():
        raise SegbenchError(f"{option} {folder} is a file; give a folder (it is created if missing), or move the"
                            " file away.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegbenchError(f"{option} {folder}: cannot create the folder ({exc.strerror or exc}); choose another"
                            " place.") from None
