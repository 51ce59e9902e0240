"""``segbench list KIND -v`` (config keys, types, defaults, ranges, doc line) and ``segbench show --defaults``."""
from __future__ import annotations

from pathlib import Path

import attrs
import yaml

from segbench.cli import main
from segbench.describe import config_keys
from segbench.plugins import make_plugin_manager
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan
from segbench.recipe.resolved import resolved_data
from segbench.registry import build_registries

REPO = Path(__file__).resolve().parents[1]


def _segbench(capsys, monkeypatch, *args) -> tuple[int, str]:
    """The segbench command in this process (torch is imported already), built-in plugins only."""
    monkeypatch.setenv("SEGBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.chdir(REPO)
    status = main(list(args))
    return status, capsys.readouterr().out


def test_list_verbose_shows_each_key_with_type_default_range_and_the_doc_line(capsys, monkeypatch):
    status, out = _segbench(capsys, monkeypatch, "list", "losses", "-v")
    assert status == 0
    lines = out.splitlines()
    assert any("threshold" in line and "float = 0.7" in line and "[greater than 0.0 and at most 1.0]" in line
               for line in lines)
    assert any("label_smoothing" in line and "[at least 0.0 and less than 1.0]" in line for line in lines)
    assert any(line.strip().startswith("Keep the pixels whose true-class probability") for line in lines)


def test_config_keys_read_literals_optionals_and_required_keys():
    from segbench.recipe.schema import TrainerConfig

    @attrs.frozen
    class Needs:
        """Doc."""

        root: str
        rate: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))

    keys = {k.name: k for k in config_keys(TrainerConfig)}
    assert keys["precision"].allowed == "one of 'auto', 'fp32', 'bf16', 'fp16'" and keys["precision"].default == "auto"
    assert keys["batch_size"].type == "int" and keys["batch_size"].default == "8"
    assert keys["batch_size"].allowed.startswith("at least 1 and at most")
    assert keys["deterministic"].default == "true" and keys["max_iterations"].default == "null"
    needs = {k.name: k for k in config_keys(Needs)}
    assert needs["root"].default == "(required)" and needs["rate"].allowed == "> 0"
    assert "None" in needs["rate"].type


def test_show_defaults_fills_every_key_and_reads_back_as_the_same_plan(tmp_path, capsys, monkeypatch):
    status, out = _segbench(capsys, monkeypatch, "show", "recipes/quickstart.yaml", "--defaults")
    assert status == 0
    shown = yaml.safe_load(out)
    assert shown["trainer"]["deterministic"] is True  # a default the quickstart recipe does not write
    assert "flip" in shown["evaluation"] and "weight_decay" in shown["optimizer"]
    assert shown["data"]["report"]["name"] == "synthetic_city"
    assert sorted(logger["name"] for logger in shown["logging"]) == ["jsonl", "tensorboard"]
    (tmp_path / "full.yaml").write_text(out)
    registries = build_registries(make_plugin_manager(load_entry_points=False))
    original = build_plan(load_recipe(REPO / "recipes" / "quickstart.yaml"), registries)
    again = build_plan(load_recipe(tmp_path / "full.yaml"), registries)
    assert resolved_data(again) == resolved_data(original) and again.hash == original.hash
    for name in ("model", "loss", "optimizer", "scheduler", "strategy"):
        assert getattr(again, name).config == getattr(original, name).config
    assert again.trainer == original.trainer and again.evaluation == original.evaluation


def test_show_into_a_pipe_closed_early_ends_quietly(tmp_path):
    import subprocess
    import sys

    # `true` reads nothing and exits at once: every write of `show` finds the pipe closed
    script = f"{sys.executable} -m segbench show {REPO / 'recipes' / 'quickstart.yaml'} | true; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 141 and done.stderr == ""
