"""Writing a matplotlib figure to the file a user named: in the format its extension names, atomically."""
from __future__ import annotations

from pathlib import Path

from segbench.atomic import atomic_write_bytes, check_output_file
from segbench.errors import SegbenchError, cannot_write

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg"}


def figure_format(out: Path, option: str = "--out") -> str:
    """The format ``out``'s extension names; any other extension is refused (a ``notes.txt`` is no figure)."""
    try:
        return FORMATS[Path(out).suffix.lower()]
    except KeyError:
        raise SegbenchError(f"{option} {out}: name a figure file ending in {', '.join(FORMATS)}; the extension"
                            " chooses the format.") from None


def save_figure(figure, out: Path, *, dpi: int, option: str = "--out") -> Path:
    out = Path(out)
    kind = figure_format(out, option)
    check_output_file(out, option)
    try:
        atomic_write_bytes(out, lambda handle: figure.savefig(handle, format=kind, dpi=dpi))
    except OSError as exc:
        raise cannot_write(out, exc, option=option) from None
    return out
