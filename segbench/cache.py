"""Where segbench keeps what it can regenerate: synthetic data, class histograms, smoke stand-in weights."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

CACHE_ENV = "SEGBENCH_CACHE"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$SEGBENCH_CACHE``, else ``$XDG_CACHE_HOME/segbench``, else ``~/.cache/segbench`` (absolute).

    An empty variable counts as unset, and a relative ``XDG_CACHE_HOME`` is ignored, as the XDG base
    directory specification asks.
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(CACHE_ENV)
    if not chosen:
        xdg = environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(environ) / ".cache"
        chosen = str(base / "segbench")
    return Path(os.path.expanduser(chosen)).absolute()


def _home(environ: Mapping[str, str]) -> Path:
    """``$HOME``, or the user's home from the password database when it is unset or empty (``~`` would
    then be the file system's root)."""
    home = environ.get("HOME")
    if home:
        return Path(home)
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):
        return Path(os.path.expanduser("~"))
