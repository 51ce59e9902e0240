"""Checkpoints: written atomically (``segbench.atomic``), read safely (``weights_only=True``)."""
from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segbench.atomic import atomic_write_bytes
from segbench.errors import CheckpointError

FORMAT_VERSION = 1


def save_checkpoint(path: Path, state: dict) -> None:
    """Save ``state`` (tensors, numbers, strings, lists, dicts) atomically with the format version."""
    state = {"format_version": FORMAT_VERSION, **state}
    try:
        atomic_write_bytes(path, lambda handle: torch.save(state, handle))
    except (OSError, RuntimeError) as error:
        # A failed write inside torch.save (a full disk) surfaces as a RuntimeError from torch's zip
        # writer, with the OSError as its context.
        exc = _os_error(error)
        if exc is None:
            raise
        raise CheckpointError(
            f"could not write checkpoint {path}: {exc.strerror or exc}. The previous checkpoint there (if any) is"
            " intact. Free disk space (or check permissions) and run the same command again to resume."
        ) from None


def _os_error(error: BaseException | None) -> OSError | None:
    while error is not None and not isinstance(error, OSError):
        error = error.__context__
    return error


def _first_sentence(exc: Exception, limit: int = 200) -> str:
    """The library's first sentence: its advice after that (torch's "there is a high likelihood that ...")
    is for other situations, and a cut at a fixed length ends mid-sentence."""
    text = (str(exc).splitlines() or [""])[0]
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[:limit] + " ..."


def load_checkpoint(path: Path) -> dict:
    """Load a segbench checkpoint, with clear errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else \
            "is not a regular file" if path.exists() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}. Give a checkpoint that `segbench run` wrote; in a run"
                              " directory, restore it from a copy or start the run over with `segbench run"
                              " --restart`.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError ... for bad files
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {_first_sentence(exc)}). It is"
            " truncated, corrupt, or not a segbench checkpoint. Delete it to start that run over (`segbench run"
            " --restart`), or restore it from a copy."
        ) from None
    if not isinstance(state, dict) or "model" not in state or "format_version" not in state:
        raise CheckpointError(
            f"{path} is not a segbench checkpoint (expected a dict with 'model' and 'format_version'; got"
            f" {type(state).__name__}{' with keys ' + ', '.join(map(str, list(state)[:8])) if isinstance(state, dict) else ''})."
            " Give a checkpoint that `segbench run` wrote; in a run directory, restore the file from a copy or"
            " start the run over with `segbench run --restart`."
        )
    _check_content(state, path)
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer segbench (checkpoint format {state['format_version']}, this version"
            f" reads up to {FORMAT_VERSION}). Upgrade segbench to read it."
        )
    return state


_FOREIGN = (" The file was not written by segbench, or was edited. In a run directory, restore it from a copy or"
            " start the run over with `segbench run --restart`.")


def _check_content(state: dict, path: Path) -> None:
    """The types a segbench checkpoint has: a whole-number format version, weights as name -> tensor."""
    version = state["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}: its format_version is {version!r}, not a whole number." + _FOREIGN)
    weights = state["model"]
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{path}: its 'model' entry is a {type(weights).__name__}, not a mapping of parameter"
                              " names to tensors." + _FOREIGN)
    wrong = [str(key) for key, value in weights.items() if not (isinstance(key, str) and torch.is_tensor(value))]
    if wrong:
        raise CheckpointError(f"{path}: its 'model' entry holds {', '.join(wrong[:5])}, which are not parameter"
                              " names with tensors." + _FOREIGN)


def load_weights(model: torch.nn.Module, weights: Mapping, path: Path, *, strict: bool = True):
    """``model.load_state_dict(weights)`` with clear errors: integer tensors where the model has floating-point
    weights (which torch would convert silently), other shapes, missing or unexpected names."""
    own = model.state_dict()
    integer = [key for key, value in weights.items()
               if key in own and own[key].is_floating_point() and not value.is_floating_point()]
    if integer:
        raise CheckpointError(f"{path}: tensor(s) {', '.join(integer[:5])} hold integer values"
                              f" ({weights[integer[0]].dtype}) where the model has floating-point weights." + _FOREIGN)
    try:
        return model.load_state_dict(weights, strict=strict)
    except RuntimeError as exc:  # tensors of other shapes (strict=False does not skip those), or names
        details = "; ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise CheckpointError(
            f"{path} does not fit this model ({details}). It was written for another model or configuration."
        ) from None


def load_model_weights(model: torch.nn.Module, path: Path, *, expected_model: str | None = None) -> dict:
    """Load a checkpoint's model weights into ``model``; mismatches are a clear error."""
    state = load_checkpoint(path)
    if expected_model is not None and state.get("model_name") not in (None, expected_model):
        raise CheckpointError(f"{path} holds weights of model {state['model_name']!r}, not {expected_model!r}.")
    result = load_weights(model, state["model"], path, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not fit this model: missing keys {result.missing_keys[:8]}, unexpected keys"
            f" {result.unexpected_keys[:8]}. It was probably written for another model or configuration."
        )
    return state


def capture_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(internal, dtype=torch.int64),
        "python_version": version,
        "python_gauss": gauss,
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()),
                     state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
