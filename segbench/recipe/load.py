"""Reading recipe files: YAML (``safe_load`` only), ``base:`` inheritance and command-line overrides."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Sequence

import attrs
import yaml

from segbench.errors import PATH_TROUBLE, RecipeError, shown
from segbench.functional.merge import (MergeMarkerError, OverridePathError, content_hash, deep_merge,
                                      set_path, strip_markers)
from segbench.limits import SEED_MAX
from segbench.recipe.schema import TOP_LEVEL_KEYS
from segbench.recipe.yaml_text import MAX_RECIPE_BYTES, YAMLShapeError, parse_yaml

# Sections that describe where a run executes, not what it computes: they do not change the hash.
UNHASHED_SECTIONS = ("slurm", "logging")  # where a run executes and where its metrics go: not what it computes
# Runs whose recipes differ only in these keys are replicates of one experiment.
REPLICATE_KEYS = ("seed",)


@attrs.frozen
class ResolvedRecipe:
    """A recipe with its ``base:`` chain merged and overrides applied."""

    path: Path
    data: dict
    chain: tuple[Path, ...]  # this file first, then its bases
    overrides: tuple[str, ...] = ()
    smoke: bool = False
    # ``seeds:`` of the recipe (its replicates), taken out of ``data`` so that adding a seed to the list
    # leaves the hash of every existing run unchanged; ``None`` when the recipe declares none.
    seeds: tuple[int, ...] | None = None
    # The seed this run was given from a seed list (``seeds:`` or ``--seeds``); ``None``: the recipe's own.
    replicate_seed: int | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def hash(self) -> str:
        """The hash of the recipe as written (merged, overrides applied); a run is named by
        :attr:`segbench.recipe.plan.Plan.hash`, the hash of the resolved recipe."""
        return content_hash(self.data, exclude=UNHASHED_SECTIONS)

    @property
    def files(self) -> list[str]:
        return [str(p) for p in self.chain]

    @property
    def base_path(self) -> Path | None:
        return self.chain[1] if len(self.chain) > 1 else None


def _read_text(path: Path) -> str:
    """The file's text, reading at most one byte more than a recipe may hold (a file may grow without end)."""
    if path.is_dir():
        raise RecipeError(f"{path} is a folder, not a recipe file: give the path of a .yaml file.")
    if path.exists() and not path.is_file():  # opening a pipe would wait for a writer, forever
        raise RecipeError(f"{path} is not a regular file (a device, a pipe or a socket), not a recipe file: give"
                          " the path of a .yaml file.")
    with open(path, "rb") as handle:
        raw = handle.read(MAX_RECIPE_BYTES + 1)
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe file {path} is larger than {MAX_RECIPE_BYTES:,} bytes; a recipe is a few"
                          " kilobytes of YAML. Check that the path names a recipe.")
    return raw.decode("utf-8")


_PATH_SHAPE = (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)


def read_yaml_mapping(path: Path) -> dict:
    """Read one YAML file that must hold a mapping; errors name the file (and line)."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise RecipeError(f"recipe file {path} does not exist. Check the path (it is relative to"
                          " the current directory, or to the recipe that names it in `base:`).") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe file {path} is not UTF-8 text (byte {exc.start} cannot be decoded). A recipe"
                          " is a YAML text file: save it with UTF-8 encoding.") from None
    except OSError as exc:
        # what is wrong with the path itself (a looping link: pathlib's resolve() lets it through from Python 3.13)
        advice = PATH_TROUBLE[exc.errno] if exc.errno in _PATH_SHAPE else \
            "check that it exists and that you may read it"
        raise RecipeError(f"cannot read recipe file {path}: {exc.strerror or exc}; {advice}.") from None
    try:
        data = parse_yaml(text)
    except YAMLShapeError as exc:
        raise RecipeError(f"recipe file {path} is refused: {exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "unhashable" in problem:
            raise RecipeError(f"{path}{where}: {problem}: a key is a list or a mapping. Keys are plain names"
                              " (`key: value`); write the key as text.") from None
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise RecipeError(f"{path}{where}: {problem}. Recipes are plain data (mappings, lists, text,"
                              " numbers): remove the `!!` tag. Plugins add code by being installed, with a"
                              " `segbench` entry point.") from None
        raise RecipeError(f"YAML syntax error in {path}{where}: {problem}. Fix the YAML there"
                          " (indentation, a missing ':' or an unclosed quote or bracket).") from None
    if data is None:
        raise RecipeError(f"recipe file {path} is empty. A recipe is a YAML mapping of sections such as"
                          " `model: {name: unet}`, or `base: <another recipe>.yaml` followed by the sections it"
                          " changes (recipes/quickstart.yaml is a whole one).")
    if not isinstance(data, dict):
        raise RecipeError(f"recipe file {path} holds a YAML {type(data).__name__}, not a mapping."
                          " A recipe's top level is `key: value` lines (model:, data:, trainer: ...).")
    return data


def _load_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict, tuple[Path, ...]]:
    path = Path(os.path.realpath(path))  # as Path.resolve(), which raises on a looping link before Python 3.13
    if path in seen:
        cycle = " -> ".join(str(p) for p in (*seen[seen.index(path):], path))
        raise RecipeError(f"recipe inheritance cycle: {cycle}. Remove one of these `base:` links.")
    data = read_yaml_mapping(path)
    base = data.pop("base", None)
    if base is None:
        try:
            return strip_markers(data), (path,)
        except MergeMarkerError as exc:
            raise RecipeError(f"{path}: {exc}.") from None
    if not isinstance(base, str) or not base.strip() or "\0" in base:
        raise RecipeError(f"{path}: `base:` must be the path of another recipe (relative to this one, or"
                          f" absolute), got {shown(base)}.")
    base_path = path.parent / base
    try:
        mode = base_path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RecipeError(f"{path}: `base: {base}` names {base_path}: {PATH_TROUBLE[errno.ELOOP]}.") from None
        raise RecipeError(f"{path}: base recipe {base!r} not found (looked for {os.path.realpath(base_path)})."
                          " `base:` paths are relative to the recipe that names them.") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, a pipe or a socket)"
        raise RecipeError(f"{path}: `base: {base}` names {os.path.realpath(base_path)}, which is {kind}, not a"
                          " recipe file. `base:` takes the path of one .yaml file, relative to this recipe.")
    base_data, base_chain = _load_chain(base_path, (*seen, path))
    try:
        return deep_merge(base_data, data), (path, *base_chain)
    except MergeMarkerError as exc:
        raise RecipeError(f"{path}: {exc}.") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.sub=value`` and parse the value as YAML (``safe_load``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or " " in key:
        raise RecipeError(f"bad override {shown(text)}: write key.sub=value, e.g. optimizer.lr=1.0e-4"
                          " or trainer.epochs=2 (no spaces around '=').")
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except YAMLShapeError as exc:
        raise RecipeError(f"override {shown(text)}: the value is refused: {exc}.") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"override {shown(text)}: the value is not valid YAML ({problem}). Write plain YAML"
                          " after '=': a number, text, true/false, null, [a, b] or {key: value}.") from None
    return key, value


def apply_overrides(data: dict, overrides: Sequence[str], *, files: Sequence[str] = ()) -> dict:
    for text in overrides:
        key, value = parse_override(text)
        section = key.partition(".")[0]
        if "." in key and section in TOP_LEVEL_KEYS and section not in data:
            # a section the recipe leaves at its defaults (e.g. evaluation.flip=true) can still be set
            data = {**data, section: {}}
        try:
            data = set_path(data, key, value)
        except (OverridePathError, MergeMarkerError) as exc:
            chain = " <- ".join(files)
            raise RecipeError(f"override {shown(text)} does not fit the recipe {chain}: {exc}.") from None
    return data


MAX_SEEDS = 1000  # runs one `seeds:` list may ask for


def check_seeds(value: Any, where: str) -> tuple[int, ...]:
    """A ``seeds:`` list: distinct non-negative integers, at least one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > MAX_SEEDS or \
            any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX for s in value):
        raise RecipeError(f"{where}: `seeds:` must be a list of up to {MAX_SEEDS} integers from 0 to {SEED_MAX}"
                          f" such as [0, 1, 2], got {shown(value, 200)}.")
    if len(set(value)) != len(value):
        raise RecipeError(f"{where}: `seeds:` {value} names a seed twice; each seed is one run.")
    return tuple(value)


def load_recipe(path: str | Path, overrides: Sequence[str] = (), *, smoke: bool = False,
                seed: int | None = None, registries=None) -> ResolvedRecipe:
    """Load ``path`` with its base chain merged, then apply ``key=value`` overrides.

    ``smoke`` validates that recipe against ``registries`` (default: the installed plugins') and
    returns its ``--smoke`` variant (see ``segbench.recipe.smoke``).
    ``seeds:`` is taken out of the data (see :class:`ResolvedRecipe`); ``seed`` sets the run's ``seed:``
    (one replicate of the experiment).
    """
    path = Path(path)
    try:  # the recipe's name goes into run directories, recipe.yaml, records and job scripts
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise RecipeError(f"recipe file {os.fsencode(path)!r}: its name holds bytes that are not UTF-8 text;"
                          " rename the file.") from None
    if path.is_dir():
        raise RecipeError(f"{path} is a folder; give one recipe file (a .yaml). `segbench emit-slurm` is the command"
                          " that takes a folder of recipes.")
    data, chain = _load_chain(path, ())
    data = apply_overrides(data, overrides, files=[str(p) for p in chain])
    seeds = None
    if "seeds" in data:
        data = dict(data)
        value = data.pop("seeds")  # `seeds=null` on the command line: the recipe's own seed only
        seeds = None if value is None else check_seeds(value, " <- ".join(str(p) for p in chain))
    if seed is not None:
        data = {**data, "seed": seed}
    recipe = ResolvedRecipe(path=path.resolve(), data=data, chain=chain, overrides=tuple(overrides),
                            seeds=seeds, replicate_seed=seed)
    if smoke:
        from segbench.recipe.smoke import smoke_recipe

        if registries is None:
            from segbench.plugins import make_plugin_manager
            from segbench.registry import build_registries

            registries = build_registries(make_plugin_manager())
        recipe = smoke_recipe(recipe, registries)
    return recipe


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
