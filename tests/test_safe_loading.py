"""Loading never runs code from data: checkpoints with ``weights_only=True``, YAML with ``safe_load``,
no pickle, and recipes cannot name code to import (only installed entry-point plugins add code).
"""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segbench.engine.checkpoint import load_checkpoint
from segbench.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("segbench", "plugins", "jobs")
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
UNSAFE_YAML_NAMES = {"Loader", "UnsafeLoader", "FullLoader", "UnsafeConstructor", "FullConstructor"}
PICKLE_MODULES = {"pickle", "dill", "cloudpickle", "marshal", "joblib"}
# Where the package may import a module by name: the built-in plugin list, a constant tuple.
IMPORT_BY_NAME_ALLOWED = {"segbench/plugins.py"}


def _dotted(node: ast.AST) -> str:
    """``torch.serialization.load`` for the expression it names, '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_loads(source: str, filename: str = "<source>") -> list[str]:
    """Every place in ``source`` that could run code while loading data, as ``file:line: what``."""
    problems = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization", "yaml", "pickle"):
            for alias in node.names:
                if alias.name in {"load", "loads", *UNSAFE_YAML, *UNSAFE_YAML_NAMES}:
                    problems.append(f"{where}: `from {node.module} import {alias.name}` hides the loader's arguments")
        if isinstance(node, ast.Attribute) and node.attr in UNSAFE_YAML_NAMES and _dotted(node.value) == "yaml":
            problems.append(f"{where}: yaml.{node.attr} constructs arbitrary Python objects")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("torch.load", "torch.serialization.load") and not _keyword_is_true(node, "weights_only"):
            problems.append(f"{where}: {name}(...) without weights_only=True")
        elif name.startswith("yaml.") and name.split(".", 1)[1] in UNSAFE_YAML:
            problems.append(f"{where}: {name}(...) instead of yaml.safe_load")
        elif name in ("np.load", "numpy.load") and _keyword_is_true(node, "allow_pickle"):
            problems.append(f"{where}: {name}(..., allow_pickle=True)")
        elif name.split(".")[0] in PICKLE_MODULES and name.split(".")[-1] in ("load", "loads", "Unpickler"):
            problems.append(f"{where}: {name}(...) unpickles")
        elif name in ("eval", "exec", "__import__"):
            problems.append(f"{where}: {name}(...)")
        elif name in ("importlib.import_module", "import_module") and filename not in IMPORT_BY_NAME_ALLOWED:
            problems.append(f"{where}: imports a module chosen at run time")
    return problems


def _package_sources():
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")


def test_the_scanner_finds_every_kind_of_unsafe_load():
    unsafe = """
pickle.loads(data)
from torch import load
torch.load(path)
torch.load(path, weights_only=False)
torch.serialization.load(path, map_location="cpu")
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
yaml.full_load(text)
numpy.load(path, allow_pickle=True)
eval(text)
importlib.import_module(name)
"""
    found = unsafe_loads(unsafe)
    assert len(found) == 12, "\n".join(found)  # yaml.load(..., Loader=yaml.Loader) counts twice
    assert {int(line.split(":")[1]) for line in found} == set(range(2, 13))
    safe = """
import pickle, torch, yaml
torch.load(path, map_location="cpu", weights_only=True)
yaml.safe_load(text)
yaml.safe_dump(data)
numpy.load(path)
error = pickle.UnpicklingError
"""
    assert unsafe_loads(safe) == []


def test_the_package_loads_checkpoints_and_yaml_only_safely():
    problems, torch_loads, yaml_loads = [], 0, 0
    for name, source in _package_sources():
        problems += unsafe_loads(source, name)
        torch_loads += source.count("torch.load(")
        yaml_loads += source.count("yaml.safe_load(")
    assert not problems, "\n".join(problems)
    assert torch_loads >= 2 and yaml_loads >= 2  # the scan saw the real loaders


# ---- recipes are data ---------------------------------------------------------------------------

@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module on sys.path that leaves a marker file when imported."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil_plugin.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield marker
    sys.modules.pop("evil_plugin", None)


@pytest.mark.parametrize("text, needles", [
    ("plugins: [evil_plugin]\n", ["plugins: unknown top-level key"]),
    ("model: {name: evil_plugin}\n", ["unknown models 'evil_plugin'"]),
    ("seed: !!python/object/apply:os.system ['touch {marker}']\n", ["remove the `!!` tag", "plain data"]),
    ("seed: !!python/module:evil_plugin\n", ["remove the `!!` tag"]),
    ("seed: !!python/name:evil_plugin.anything\n", ["remove the `!!` tag"]),
    ("seed: !!python/object/new:evil_plugin.Thing {}\n", ["remove the `!!` tag"]),
], ids=["plugins-key", "component-name", "object-apply-tag", "module-tag", "name-tag", "object-new-tag"])
def test_a_recipe_cannot_run_or_import_code(cli, recipe_dir, evil_module, text, needles):
    recipe = recipe_dir / "evil.yaml"
    recipe.write_text("base: _base/default.yaml\n" + text.replace("{marker}", str(evil_module.parent / "EXECUTED")))
    for command in ("show", "run"):
        status, out, err = cli(command, recipe, "--runs-dir", recipe_dir / "runs") if command == "run" \
            else cli(command, recipe)
        assert status == 2, err
        assert "Traceback" not in err and all(needle in err for needle in needles), err
    assert not evil_module.exists() and "evil_plugin" not in sys.modules
    assert not (evil_module.parent / "EXECUTED").exists() and not (recipe_dir / "runs").exists()


def test_an_override_cannot_run_code(cli, recipe_dir, evil_module):
    recipe = recipe_dir / "ok.yaml"
    recipe.write_text("base: _base/default.yaml\n")
    status, out, err = cli("show", recipe, f"seed=!!python/object/apply:os.system ['touch {evil_module}']")
    assert status == 2 and "not valid YAML" in err and "Traceback" not in err
    assert not evil_module.exists()


# ---- checkpoints are data -----------------------------------------------------------------------

class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (["touch", str(self.marker)],)


@pytest.mark.parametrize("pickle_only", [False, True], ids=["torch-save", "plain-pickle"])
def test_a_checkpoint_cannot_run_code(tmp_path, pickle_only):
    marker, path = tmp_path / "EXECUTED", tmp_path / "last.pt"
    payload = {"format_version": 1, "model": _Exploit(marker)}
    if pickle_only:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
    assert not marker.exists()
