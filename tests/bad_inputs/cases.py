"""The bad-input corpus: one row per mistake a user can make, each run through the real command line.

A case's ``setup`` prepares its folder (the working directory of the command, which already holds
``toy.yaml``, a completed run of it in ``runs/`` and whatever ``World`` shares) and returns the
command's arguments. ``expect`` lists text the error message must contain; ``{name}`` fills in
``ctx.vars[name]`` (the file or key the message must name). ``check`` adds assertions after the run.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import attrs
import numpy as np

from tests.bad_inputs.harness import (CITYSCAPES_RECIPE, TREE_SIZE, TOY_RECIPE, make_site, tree_image,
                                      tree_label)

RUN = ("--runs-dir", "runs")


@attrs.frozen
class World:
    """What every case may use: the toy plugin's site, a completed toy run, a pristine Cityscapes tree."""

    site: Path
    baseline: Path  # runs/<toy run> of a completed `segbench run toy.yaml`
    tree: Path


@attrs.define
class CaseContext:
    world: World
    dir: Path
    sites: list = attrs.Factory(list)  # extra sites before the toy plugin's on PYTHONPATH
    prefix: list = attrs.Factory(list)  # a command prefix (e.g. dropping root's capabilities)
    env: dict = attrs.Factory(dict)  # extra environment variables for the command
    vars: dict = attrs.Factory(dict)

    @property
    def run_dir(self) -> Path:
        """This case's copy of the completed toy run."""
        return self.dir / "runs" / self.world.baseline.name

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        return path

    def child(self, text: str, name: str = "bad.yaml") -> list[str]:
        """``segbench run`` on a recipe that inherits ``toy.yaml`` and adds ``text``."""
        self.write(name, "base: toy.yaml\n" + text)
        self.vars["recipe"] = name
        return ["run", name, *RUN]

    def tree(self) -> Path:
        root = self.dir / "cityscapes"
        shutil.copytree(self.world.tree, root)
        self.vars.update(root=str(root), image=str(tree_image(root, index=1)), label=str(tree_label(root, index=1)))
        return root

    def city_run(self, *, root: Path | None = None, num_workers: int = 0) -> list[str]:
        """``segbench run`` on the Cityscapes tree at ``root`` (default: a fresh copy of the pristine one)."""
        root = root if root is not None else self.tree()
        self.write("city.yaml", CITYSCAPES_RECIPE.format(root=root, num_workers=num_workers))
        return ["run", "city.yaml", *RUN]

    def plugin(self, distribution: str, entry_point: str, module: str, source: str) -> None:
        """Install (on ``PYTHONPATH``) a distribution whose ``segbench`` entry point is ``module``."""
        site = make_site(self.dir / "site", distribution, {entry_point: module}, {f"{module}.py": source})
        self.sites.append(site)


@attrs.frozen
class Case:
    name: str
    group: str  # recipe, cli, data, checkpoint (checkpoints and run directories), plugin
    setup: Callable[[CaseContext], list[str]]
    expect: tuple[str, ...]
    check: Callable[[CaseContext, object], None] | None = None
    skip: Callable[[], str | None] | None = None  # returns a reason to skip here, or None
    slow: bool = False  # a variation of a default case: run with `pytest -m slow`


CASES: list[Case] = []


def case(group: str, *expect: str, check=None, skip=None, slow=False):
    def register(setup):
        CASES.append(Case(setup.__name__, group, setup, expect, check, skip, slow))
        return setup
    return register


# ---- recipes ------------------------------------------------------------------------------------

@case("recipe", "YAML syntax error", "{recipe}", "line 3", "unclosed")
def yaml_syntax_error(ctx):
    return ctx.child("model: {name: nobn\ntrainer: 1\n")


@case("recipe", "modle", "unknown top-level key", "valid keys: description, seed, seeds, model",
      "evaluation, logging, slurm\n")  # not upstream, which segbench writes
def unknown_top_level_key(ctx):
    return ctx.child("modle: {name: nobn}\n")


@case("recipe", "model: unknown key(s) channel", "valid keys: channels", slow=True)
def unknown_key_in_a_section(ctx):
    return ctx.child("model: {channel: 4}\n")


@case("recipe", "model.name", "unknown models 'nobm'", "Did you mean 'nobn'", "segbench list models", slow=True)
def unknown_component_name(ctx):
    return ctx.child("model: {name: nobm}\n")


@case("recipe", "trainer.epochs", "expected an integer, got the string 'many'", slow=True)
def wrong_type(ctx):
    return ctx.child("trainer: {epochs: many}\n")


@case("recipe", "optimizer.lr", "write 6.0e-5", slow=True)
def number_written_as_text(ctx):
    return ctx.child("optimizer: {lr: 6e-5}\n")


@case("recipe", "2 problem(s)", "trainer.batch_size", "trainer.accumulate", "must be at least 1", slow=True)
def batch_and_accumulation_zero(ctx):
    return ctx.child("trainer: {batch_size: 0, accumulate: 0}\n")


@case("recipe", "trainer.epochs", "must be at least 0", slow=True)
def negative_epochs(ctx):
    return ctx.child("trainer: {epochs: -2}\n")


@case("recipe", "trainer.epochs is 0", "set epochs >= 1 or max_iterations", slow=True)
def nothing_to_train(ctx):
    return ctx.child("trainer: {epochs: 0}\n")


@case("recipe", "seed", "must be an integer from 0 to", slow=True)
def negative_seed(ctx):
    return ctx.child("seed: -3\n")


_BIG_CROP = "data: {train_transforms: [{name: random_scale_crop, size: [64, 64], scale: [1.0, 1.0], pad: false},"\
            " {name: normalize}]}\n"


@case("recipe", "data.train_transforms[0].size", "64x64 crop does not fit a 16x16 image", "set `pad: true`", slow=True)
def crop_larger_than_the_image_without_padding(ctx):
    return ctx.child(_BIG_CROP)


@case("recipe", "data.train_transforms[0].size", "64x64 crop does not fit", "set `pad: true`",
      "DataLoader worker process 0")
def crop_larger_than_the_image_in_a_worker(ctx):
    return ctx.child(_BIG_CROP + "trainer: {num_workers: 1}\n")


@case("recipe", "data.select", "trainer.select_on is 'select'", "set trainer.select_on: report", slow=True)
def selection_on_a_missing_split(ctx):
    return ctx.child("data: {select: null}\n")


@case("recipe", "trainer.precision fp16 needs a CUDA device", "use bf16 or fp32", slow=True)
def fp16_on_the_cpu(ctx):
    return ctx.child("trainer: {precision: fp16, device: cpu}\n")


@case("recipe", "12 images, fewer than one batch of 100", "lower trainer.batch_size", slow=True)
def batch_larger_than_the_dataset(ctx):
    return ctx.child("trainer: {batch_size: 100}\n")


@case("recipe", "{recipe}", "base recipe 'nowhere.yaml' not found", "relative to the recipe", slow=True)
def missing_base_recipe(ctx):
    ctx.write("bad.yaml", "base: nowhere.yaml\n")
    ctx.vars["recipe"] = "bad.yaml"
    return ["run", "bad.yaml", *RUN]


@case("recipe", "inheritance cycle", "a.yaml -> ", "b.yaml -> ", "Remove one of these `base:` links", slow=True)
def base_cycle(ctx):
    ctx.write("a.yaml", "base: b.yaml\n")
    ctx.write("b.yaml", "base: a.yaml\n")
    return ["run", "a.yaml", *RUN]


@case("recipe", "{recipe}", "is empty", "A recipe is a YAML mapping", slow=True)
def empty_recipe(ctx):
    ctx.write("bad.yaml", "# nothing here\n")
    ctx.vars["recipe"] = "bad.yaml"
    return ["run", "bad.yaml", *RUN]


@case("recipe", "loss: missing section", "inherit it with `base:`", slow=True)
def missing_section(ctx):
    text = "".join(line + "\n" for line in TOY_RECIPE.splitlines() if not line.startswith("loss:"))
    ctx.write("bad.yaml", text)
    return ["run", "bad.yaml", *RUN]


@case("recipe", "model: expected a mapping with a `name:` key, got 'nobn'", slow=True)
def section_that_is_not_a_mapping(ctx):
    return ctx.child("model: nobn\n")


@case("recipe", "data.train_transforms[0].name", "unknown transform 'hflipp'", "did you mean 'hflip'", slow=True)
def unknown_transform(ctx):
    return ctx.child("data: {train_transforms: [{name: hflipp}, {name: normalize}]}\n")


@case("recipe", "{recipe}", "is not UTF-8 text", "save it with UTF-8 encoding", slow=True)
def recipe_that_is_not_text(ctx):
    ctx.write("bad.yaml", b"seed: 0\nmodel: {name: \xff\xfe nobn}\n")
    ctx.vars["recipe"] = "bad.yaml"
    return ["run", "bad.yaml", *RUN]


@case("recipe", "plugins: unknown top-level key", slow=True)
def plugins_key_in_a_recipe(ctx):
    ctx.write("evil_plugin.py", "open('IMPORTED', 'w').close()\n")
    return ctx.child("plugins: [evil_plugin]\n")


def _nothing_executed(ctx, result):
    assert not (ctx.dir / "IMPORTED").exists() and not (ctx.dir / "EXECUTED").exists()


@case("recipe", "{recipe} line 2", "python/object/apply:os.system", "Recipes are plain data", "remove the `!!` tag",
      check=_nothing_executed, slow=True)
def python_tag_in_a_recipe(ctx):
    return ctx.child("seed: !!python/object/apply:os.system ['touch EXECUTED']\n")


# ---- command line -------------------------------------------------------------------------------

@case("recipe", "data.train_transforms: expected a list of transforms", "got False", slow=True)
def transforms_that_are_not_a_list(ctx):
    return ctx.child("data: {train_transforms: false}\n")


@case("cli", "invalid choice: 'trian'", "choose from", "run")
def unknown_command(ctx):
    return ["trian", "toy.yaml"]


@case("cli", "recipe file", "nope.yaml does not exist", "Check the path", slow=True)
def missing_recipe_file(ctx):
    return ["run", "nope.yaml", *RUN]


@case("cli", "bad override 'trainer.epochs'", "write key.sub=value", slow=True)
def override_without_a_value(ctx):
    return ["run", "toy.yaml", "trainer.epochs", *RUN]


@case("cli", "trainr.epochs=2", "'trainr' is not a section", slow=True)
def override_of_an_unknown_section(ctx):
    return ["run", "toy.yaml", "trainr.epochs=2", *RUN]


@case("cli", "override 'model={name: nobn'", "not valid YAML", slow=True)
def override_that_is_not_yaml(ctx):
    return ["run", "toy.yaml", "model={name: nobn", *RUN]


@case("cli", "unrecognized arguments: --epochs 3", "usage: segbench", slow=True)
def unknown_option(ctx):
    return ["run", "toy.yaml", "--epochs", "3", *RUN]


@case("cli", "trainer.device: 'tpu' is not a device", "use auto, cpu, cuda or cuda:N", slow=True)
def unknown_device(ctx):
    return ["run", "toy.yaml", "--device", "tpu", *RUN]


@case("cli", "toy.yaml is a recipe; this command reads a trained run", "segbench run")
def export_a_recipe(ctx):
    return ["export", "toy.yaml"]


@case("cli", "runs/nothing does not exist", "give a run directory")
def evaluate_a_missing_path(ctx):
    return ["evaluate", "runs/nothing"]


@case("cli", "runs is a folder", "give one recipe file", slow=True)
def run_a_folder(ctx):
    return ["run", "runs", *RUN]


@case("cli", "b'trainer.epochs=\\xff'", "holds bytes that are not UTF-8 text")
def override_that_is_not_utf8(ctx):
    return ["run", "toy.yaml", os.fsdecode(b"trainer.epochs=\xff"), *RUN]


@case("cli", "b'caf\\xe9.yaml'", "holds bytes that are not UTF-8 text", "rename the file", slow=True)
def recipe_whose_name_is_not_utf8(ctx):
    name = os.fsdecode(b"caf\xe9.yaml")
    ctx.write(name, (ctx.dir / "toy.yaml").read_text())
    return ["run", name, *RUN]


def _no_run_left(ctx, outcome):
    assert sorted(p.name for p in (ctx.dir / "runs").iterdir()) == [ctx.world.baseline.name], outcome.stderr


@case("cli", "loop.yaml", "a symbolic link that loops", "fix or remove the link", check=_no_run_left)
def recipe_that_is_a_looping_link(ctx):
    os.symlink("loop2.yaml", ctx.dir / "loop.yaml")
    os.symlink("loop.yaml", ctx.dir / "loop2.yaml")
    return ["run", "loop.yaml", *RUN]


@case("cli", "child.yaml", "`base: loop.yaml`", "a symbolic link that loops", "fix or remove the link",
      check=_no_run_left)
def recipe_whose_base_is_a_looping_link(ctx):
    os.symlink("loop2.yaml", ctx.dir / "loop.yaml")
    os.symlink("loop.yaml", ctx.dir / "loop2.yaml")
    ctx.write("child.yaml", "base: loop.yaml\n")
    return ["run", "child.yaml", *RUN]


@case("cli", "--out notes.txt", "name a figure file ending in .png", check=lambda ctx, outcome:
      (ctx.dir / "notes.txt").read_text() == "mine\n")
def figure_under_a_name_that_is_no_figure(ctx):
    ctx.write("notes.txt", "mine\n")
    return ["plot", str(ctx.run_dir), "--out", "notes.txt"]


@case("cli", "slurm: unknown key(s) bogus", slow=True)
def slurm_override_checked_when_nothing_is_left_to_submit(ctx):
    return ["emit-slurm", "toy.yaml", "slurm.bogus=1", *RUN]


@case("cli", "--opset 30", "cannot write that ONNX opset (at most", slow=True)
def export_to_an_opset_torch_cannot_write(ctx):
    return ["export", str(ctx.run_dir), "--opset", "30"]


# ---- data ---------------------------------------------------------------------------------------

@case("data", "{root} does not exist", "the dataset's `root` key", "cityscapes-dataset.com", "synthetic_city",
      slow=True)
def missing_dataset_folder(ctx):
    root = ctx.dir / "no-such-cityscapes"
    ctx.vars["root"] = str(root)
    return ctx.city_run(root=root)


@case("data", "have no label file", "{image}", "gtFine_trainvaltest.zip", slow=True)
def image_without_a_label(ctx):
    ctx.tree()
    Path(ctx.vars["label"]).unlink()
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "split 'val'", "has no images", "leftImg8bit", slow=True)
def empty_split(ctx):
    root = ctx.tree()
    for folder in ("leftImg8bit", "gtFine"):
        shutil.rmtree(root / folder / "val" / "frankfurt")
    return ctx.city_run(root=root)


@case("data", "subset.first is 99", "has only 4 images", slow=True)
def subset_larger_than_the_split(ctx):
    args = ctx.city_run()
    path = ctx.dir / "city.yaml"
    path.write_text(path.read_text().replace("train: {split: train}", "train: {split: train, subset: {first: 99}}"))
    return args


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@case("data", "{image} is not a readable PNG", "re-extract it", slow=True)
def corrupt_png(ctx):
    ctx.tree()
    _truncate(Path(ctx.vars["image"]))
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "{image} is not a readable PNG", "re-extract it", "DataLoader worker process 0")
def corrupt_png_read_by_a_worker(ctx):
    ctx.tree()
    _truncate(Path(ctx.vars["image"]))
    return ctx.city_run(root=Path(ctx.vars["root"]), num_workers=1)


def _save_png(path: Path, array) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


@case("data", "{label} has 3 channels", "_color.png", "use the *_labelIds.png files", slow=True)
def rgb_label(ctx):
    ctx.tree()
    _save_png(Path(ctx.vars["label"]), np.zeros((*TREE_SIZE, 3), np.uint8))
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "{label} holds value(s) 200", "not Cityscapes labelIds", "restore the original *_labelIds.png", slow=True)
def label_values_out_of_range(ctx):
    ctx.tree()
    _save_png(Path(ctx.vars["label"]), np.full(TREE_SIZE, 200, np.uint8))
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "size mismatch", "{image}", "{label}", "set check_sizes: false")
def image_and_label_sizes_differ(ctx):
    ctx.tree()
    _save_png(Path(ctx.vars["label"]), np.zeros((TREE_SIZE[0] // 2, TREE_SIZE[1]), np.uint8))
    return ctx.city_run(root=Path(ctx.vars["root"]))


def _permissions_unenforceable() -> str | None:
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "running as root without setpriv: file permissions cannot be enforced"
    return None


@case("data", "permission denied reading {image}", "chmod a+r", skip=_permissions_unenforceable)
def unreadable_image(ctx):
    ctx.tree()
    Path(ctx.vars["image"]).chmod(0)
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        ctx.prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "{label} does not exist", "deleted or moved", slow=True)
def label_that_is_a_dangling_link(ctx):
    ctx.tree()
    label = Path(ctx.vars["label"])
    label.unlink()
    label.symlink_to(ctx.dir / "gone.png")
    return ctx.city_run(root=Path(ctx.vars["root"]))


# ---- checkpoints and run directories ------------------------------------------------------------

def _unfinished_run(ctx) -> Path:
    """The run copy made unfinished (no results.json), so `segbench run toy.yaml` resumes from last.pt."""
    (ctx.run_dir / "results.json").unlink()
    last = ctx.run_dir / "checkpoints" / "last.pt"
    ctx.vars["last"] = str(Path("runs") / ctx.world.baseline.name / "checkpoints" / "last.pt")
    return last


@case("checkpoint", "{last} cannot be read", "truncated, corrupt", "`segbench run --restart`")
def truncated_last_checkpoint(ctx):
    _truncate(_unfinished_run(ctx))
    return ["run", "toy.yaml", *RUN]


@case("checkpoint", "{last} is not a segbench checkpoint", "got OrderedDict with keys 0.weight", "--restart", slow=True)
def last_checkpoint_that_is_a_bare_state_dict(ctx):
    import torch

    last = _unfinished_run(ctx)
    torch.save(torch.load(last, weights_only=True)["model"], last)
    return ["run", "toy.yaml", *RUN]


@case("checkpoint", "last.pt belongs to another recipe", "use --restart", slow=True)
def last_checkpoint_of_another_recipe(ctx):
    from segbench.plugins import make_plugin_manager
    from segbench.recipe.load import load_recipe
    from segbench.recipe.plan import build_plan
    from segbench.registry import build_registries
    from tests.bad_inputs import toy_plugin

    args = ctx.child("trainer: {epochs: 4}\n", name="longer.yaml")
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(toy_plugin, name="toy")
    plan = build_plan(load_recipe(ctx.dir / "longer.yaml"), build_registries(manager))
    run = ctx.dir / "runs" / plan.run_name / "checkpoints"
    run.mkdir(parents=True)
    shutil.copy2(ctx.run_dir / "checkpoints" / "last.pt", run / "last.pt")
    return args


def _best(ctx) -> Path:
    ctx.vars["best"] = str(Path("runs") / ctx.world.baseline.name / "checkpoints" / "best.pt")
    return ctx.run_dir / "checkpoints" / "best.pt"


@case("checkpoint", "{best} cannot be read", "truncated, corrupt", slow=True)
def evaluate_a_truncated_checkpoint(ctx):
    _truncate(_best(ctx))
    return ["evaluate", ctx.vars["best"]]


def _foreign_checkpoint(ctx, model, name: str, **extra) -> list[str]:
    from segbench.engine.checkpoint import save_checkpoint

    save_checkpoint(_best(ctx), {"model": model.state_dict(), "model_name": name, **extra})
    return ["evaluate", ctx.vars["best"]]


@case("checkpoint", "{best} holds weights of model 'tiny_unet', not 'nobn'", slow=True)
def evaluate_a_checkpoint_of_another_model(ctx):
    import torch

    return _foreign_checkpoint(ctx, torch.nn.Conv2d(3, 3, 1), "tiny_unet")


@case("checkpoint", "{best} does not fit this model", "size mismatch for 0.weight", "another model or configuration",
      slow=True)
def evaluate_a_checkpoint_of_another_configuration(ctx):
    from tests.engine_plugin import NoBNConfig, build_nobn

    return _foreign_checkpoint(ctx, build_nobn(NoBNConfig(channels=4), num_classes=3), "nobn")


@case("checkpoint", "{best} was written by a newer segbench", "checkpoint format 99", "Upgrade segbench", slow=True)
def evaluate_a_checkpoint_of_a_newer_format(ctx):
    import torch

    from tests.engine_plugin import NoBNConfig, build_nobn

    path = _best(ctx)
    torch.save({"format_version": 99, "model": build_nobn(NoBNConfig(), num_classes=3).state_dict()}, path)
    return ["evaluate", ctx.vars["best"]]


@case("checkpoint", "{best} cannot be read", "UnpicklingError", "not a segbench checkpoint", slow=True)
def evaluate_a_pickled_module(ctx):
    import torch

    from tests.engine_plugin import NoBNConfig, build_nobn

    torch.save(build_nobn(NoBNConfig(), num_classes=3), _best(ctx))
    return ["evaluate", ctx.vars["best"]]


class _Exploit:
    def __reduce__(self):
        return subprocess.call, (["touch", "EXECUTED"],)


@case("checkpoint", "{best} cannot be read", "not a segbench checkpoint", check=_nothing_executed)
def evaluate_a_pickle_that_runs_code(ctx):
    import torch

    torch.save({"model": _Exploit(), "format_version": 1}, _best(ctx), pickle_module=pickle)
    return ["evaluate", ctx.vars["best"]]


@case("checkpoint", "outside.pt is not inside a run directory", "<run>/recipe.yaml", slow=True)
def evaluate_a_checkpoint_outside_a_run(ctx):
    shutil.copy2(ctx.run_dir / "checkpoints" / "best.pt", ctx.dir / "outside.pt")
    return ["evaluate", "outside.pt"]


@case("checkpoint", "has no checkpoint yet", "train it first with `segbench run`", slow=True)
def evaluate_a_run_without_checkpoints(ctx):
    shutil.rmtree(ctx.run_dir / "checkpoints")
    return ["evaluate", str(Path("runs") / ctx.world.baseline.name)]


@case("checkpoint", "is in use by process 4242 on host build-node-7", "delete the lock file")
def run_locked_by_a_process_on_another_host(ctx):
    (ctx.run_dir / "results.json").unlink()
    (ctx.run_dir / "run.lock").write_text(json.dumps({"host": "build-node-7", "pid": 4242}))
    return ["run", "toy.yaml", *RUN]


# ---- plugins ------------------------------------------------------------------------------------

@case("plugin", "could not load plugin 'broken'", "broken_module", "broken-dist", "needs libfoo",
      "SEGBENCH_BLOCK_PLUGINS=broken")
def plugin_failing_at_import(ctx):
    ctx.plugin("broken-dist", "broken", "broken_module", "raise ImportError('needs libfoo')\n")
    return ["list", "models"]


@case("plugin", "could not load plugin 'exiting'", "it called sys.exit(3) while imported",
      "SEGBENCH_BLOCK_PLUGINS=exiting")
def plugin_exiting_at_import(ctx):
    ctx.plugin("exiting-dist", "exiting", "exiting_module", "import sys\nsys.exit(3)\n")
    return ["list", "models"]


_DUPLICATE = """\
import attrs
from segbench import hookimpl

@attrs.frozen
class Config:
    pass

@hookimpl
def segbench_register_models(register):
    register("unet", lambda config, *, num_classes: None, config=Config)
"""


@case("plugin", "models name 'unet' is registered twice", "segbench_plugins.unet", "'dup'",
      "SEGBENCH_BLOCK_PLUGINS", slow=True)
def plugin_registering_a_taken_name(ctx):
    ctx.plugin("dup-dist", "dup", "dup_module", _DUPLICATE)
    return ["list", "models"]


_EXPLODING = """\
import attrs
from segbench import hookimpl

@attrs.frozen
class Config:
    pass

def build(config, *, num_classes):
    raise ValueError("the exploding model cannot be built")

@hookimpl
def segbench_register_models(register):
    register("exploding", build, config=Config)
"""


@case("plugin", "model: model 'exploding' (plugin 'boom' (distribution boom-dist 1.0)) failed to build", "ValueError",
      "the exploding model cannot be built", "report the problem to the plugin's authors", slow=True)
def plugin_factory_raising(ctx):
    ctx.plugin("boom-dist", "boom", "boom_module", _EXPLODING)
    return ctx.child("model: {name: exploding}\n")


_RAISING_HOOK = """\
from segbench import hookimpl

@hookimpl
def segbench_register_losses(register):
    raise RuntimeError("registry on fire")
"""


@case("plugin", "plugin 'fire' (distribution fire-dist 1.0) failed while registering losses", "registry on fire",
      "SEGBENCH_BLOCK_PLUGINS=fire",
      slow=True)
def plugin_hook_raising(ctx):
    ctx.plugin("fire-dist", "fire", "fire_module", _RAISING_HOOK)
    return ["list"]


# ---- hostile shapes and values ------------------------------------------------------------------

_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


@case("recipe", "{recipe} is refused", "expands to more than", "aliases")
def alias_bomb(ctx):
    return ctx.child(_LAUGHS + "description: *i\n")


@case("recipe", "{recipe} is refused", "nested more than", slow=True)
def deeply_nested_recipe(ctx):
    return ctx.child("description: " + "[" * 200 + "]" * 200 + "\n")


@case("recipe", "{recipe} is larger than", "bytes", slow=True)
def huge_recipe_file(ctx):
    return ctx.child("description: |\n" + "  x\n" * 600_000)


@case("recipe", "duplicate key 'optimizer'", "line 3", "first given on line 2")
def duplicate_key(ctx):
    return ctx.child("optimizer: {name: sgd, lr: 0.1, momentum: 0.0}\noptimizer: {name: sgd, lr: 1000}\n")


@case("recipe", "optimizer.lr", "finite", slow=True)
def nan_learning_rate(ctx):
    return ctx.child("optimizer: {lr: .nan}\n")


@case("recipe", "trainer.batch_size", "at most 4096", slow=True)
def absurd_batch_size(ctx):
    return ctx.child("trainer: {batch_size: 1000000000}\n")


@case("recipe", "seed", "from 0 to", slow=True)
def huge_seed(ctx):
    return ctx.child("seed: 99999999999999999999999\n")


@case("recipe", "data.train_transforms[0].std", "NaN", slow=True)
def zero_normalisation_std(ctx):
    return ctx.child("data: {train_transforms: [{name: normalize, std: [0.0, 0.2, 0.2]}]}\n")


@case("recipe", "`base: .`", "is a folder", "one .yaml file", slow=True)
def base_that_is_a_folder(ctx):
    ctx.write("bad.yaml", "base: .\n")
    ctx.vars["recipe"] = "bad.yaml"
    return ["run", "bad.yaml", *RUN]


@case("recipe", "data.train.subset.cities", "expected a list", "write [aachen]", slow=True)
def cities_given_as_a_string(ctx):
    return ctx.city_run() + ["data.train.subset={cities: aachen}"]


@case("recipe", "trainer.grad_clip", "write 1.0e+2", slow=True)
def exponent_without_a_sign(ctx):
    return ctx.child("trainer: {grad_clip: 1e2}\n")


@case("recipe", "{recipe} is refused", "line 3", "`!!set`", "not plain data", slow=True)
def yaml_value_that_is_not_plain_data(ctx):
    return ctx.child("description: a date is text, 2024-01-01\ntrainer: {epochs: !!set {a}}\n")


@case("recipe", "strategy finetune starts from", "trains model 'nobn'", "this recipe's model is 'enet'", slow=True)
def fine_tuning_another_model(ctx):
    return ctx.child("strategy: {name: finetune}\nmodel: {name: enet, _replace_: true}\n")


@case("cli", "trainer.epochs", "must be at least 0", slow=True)
def grid_point_refused_before_the_others_train(ctx):
    return ["run", "toy.yaml", *RUN, "--grid", "trainer.epochs=2,-1"]  # epochs=2 would train a new run first


def _reported_once(ctx, outcome):
    assert outcome.stderr.count("fien") == 1 and "data.train" not in outcome.stderr, outcome.stderr


@case("recipe", "data.dataset.annotation", "'fien' is not allowed", check=_reported_once, slow=True)
def bad_shared_dataset_key(ctx):
    return ctx.city_run() + ["data.dataset.annotation=fien"]


@case("cli", "--runs-dir", "runs.txt", "is a file")
def runs_dir_that_is_a_file(ctx):
    ctx.write("runs.txt", "not a folder\n")
    return ["run", "toy.yaml", "--runs-dir", "runs.txt"]


@case("cli", "run folder name", "255 bytes", "shorter")
def run_name_over_the_file_name_limit(ctx):
    name = "r" * 250 + ".yaml"
    ctx.write(name, TOY_RECIPE)
    return ["run", name, *RUN]


@case("cli", "Permission denied", "{runs}", "choose another place", skip=_permissions_unenforceable, slow=True)
def read_only_runs_dir(ctx):
    runs = ctx.dir / "ro-runs"
    runs.mkdir()
    runs.chmod(0o555)
    ctx.vars["runs"] = str(runs)
    if os.geteuid() == 0:
        ctx.prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]
    return ["run", "toy.yaml", "--runs-dir", str(runs)]


@case("cli", "--out", "jobs.sh", "is a file", slow=True)
def emit_slurm_out_that_is_a_file(ctx):
    ctx.write("jobs.sh", "#!/bin/sh\n")
    return ["emit-slurm", "toy.yaml", "--out", "jobs.sh"]


@case("cli", "--size", "each side must be from", slow=True)
def models_size_absurd(ctx):
    return ["models", "--size", "30000x30000"]


@case("cli", "--size", "write HEIGHTxWIDTH", slow=True)
def synth_size_malformed(ctx):
    return ["synth", "city", "--size", "128by256"]


@case("cli", "cache", "cache.txt", "SEGBENCH_CACHE")
def unwritable_cache(ctx):
    ctx.write("cache.txt", "a file where the cache folder goes\n")
    ctx.env["SEGBENCH_CACHE"] = str(ctx.dir / "cache.txt")
    return ctx.child("data:\n  dataset: {name: synthetic_city, train: 2, val: 2, train_extra: 0, size: [32, 64]}\n"
                     "  select: {split: val, _replace_: true}\n  report: {split: val, _replace_: true}\n")


@case("data", "must share a size", "{image}", "random_scale_crop", "trainer.batch_size: 1")
def images_of_different_sizes_in_one_batch(ctx):
    ctx.tree()
    rng = np.random.default_rng(0)
    _save_png(Path(ctx.vars["image"]), rng.integers(0, 256, (TREE_SIZE[0] * 2, TREE_SIZE[1], 3), dtype=np.uint8))
    _save_png(Path(ctx.vars["label"]), rng.integers(0, 34, (TREE_SIZE[0] * 2, TREE_SIZE[1]), dtype=np.uint8))
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "must share a size", "{val_image}", "evaluation.batch_size: 1")
def images_of_different_sizes_in_one_evaluation_batch(ctx):
    root = ctx.tree()
    image, label = tree_image(root, "val", "frankfurt"), tree_label(root, "val", "frankfurt")
    ctx.vars["val_image"] = str(image)
    rng = np.random.default_rng(0)
    _save_png(image, rng.integers(0, 256, (TREE_SIZE[0] * 2, TREE_SIZE[1], 3), dtype=np.uint8))
    _save_png(label, rng.integers(0, 34, (TREE_SIZE[0] * 2, TREE_SIZE[1]), dtype=np.uint8))
    command = ctx.city_run(root=root)
    return [*command[:2], "evaluation.batch_size=2", *command[2:]]


@case("data", "{label}", "symbolic link", slow=True)
def label_that_is_a_looping_link(ctx):
    ctx.tree()
    label = Path(ctx.vars["label"])
    label.unlink()
    label.symlink_to(label)
    return ctx.city_run(root=Path(ctx.vars["root"]))


@case("data", "is not valid UTF-8", "rename it", "aachen_\\xff_000020")
def file_name_that_is_not_utf8(ctx):
    root = ctx.tree()
    folder = root / "leftImg8bit" / "train" / "aachen"
    os.rename(folder / Path(ctx.vars["image"]).name, os.fsencode(folder) + b"/aachen_\xff_000020_leftImg8bit.png")
    return ctx.city_run(root=root)


@case("data", "30000x30000", "{image}", "pixels")
def predict_a_png_that_claims_to_be_huge(ctx):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")
    ctx.write("huge.png", png)
    ctx.vars["image"] = "huge.png"
    return ["predict", str(ctx.run_dir), "huge.png", "--out", "pred"]


def _checkpoint_with(ctx, change) -> list[str]:
    import torch

    last = _unfinished_run(ctx)
    state = torch.load(last, weights_only=True)
    change(state)
    torch.save(state, last)
    return ["run", "toy.yaml", *RUN]


@case("checkpoint", "{last}", "'model'", "not a mapping", "--restart")
def checkpoint_whose_state_dict_is_not_a_mapping(ctx):
    return _checkpoint_with(ctx, lambda state: state.update(model=[1, 2, 3]))


@case("checkpoint", "{last}", "integer", "0.weight", slow=True)
def checkpoint_with_integer_weights(ctx):
    return _checkpoint_with(ctx, lambda state: state["model"].update(
        {key: value.to(dtype=__import__("torch").int64) for key, value in state["model"].items()}))


@case("checkpoint", "{last}", "format_version", "'1'", slow=True)
def checkpoint_with_a_text_format_version(ctx):
    return _checkpoint_with(ctx, lambda state: state.update(format_version="1"))


@case("plugin", "'nobn'", "blocked", "SEGBENCH_BLOCK_PLUGINS")
def component_of_a_blocked_plugin(ctx):
    ctx.env["SEGBENCH_BLOCK_PLUGINS"] = "toy"
    return ["run", "toy.yaml", *RUN]


_MISSPELLED_HOOK = """\
import attrs
from torch import nn
from segbench import hookimpl

@attrs.frozen
class Config:
    pass

@hookimpl
def segbench_register_model(register):
    register("never", lambda config, *, num_classes: nn.Conv2d(3, num_classes, 1), config=Config)
"""


@case("plugin", "plugin 'typo' (distribution typo-dist 1.0) defines 'segbench_register_model'",
      "not a segbench hook", "did you mean 'segbench_register_models'")
def plugin_with_a_misspelled_hook(ctx):
    ctx.plugin("typo-dist", "typo", "typo_module", _MISSPELLED_HOOK)
    return ["list", "models"]


_CONTRACT_BREAKING = """\
import attrs
from torch import nn
from segbench import hookimpl

@attrs.frozen
class Config:
    pass

class DictModel(nn.Module):  # torchvision's segmentation models return {"out": logits}
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return {"out": self.conv(x)}

@hookimpl
def segbench_register_models(register):
    register("dict_model", lambda config, *, num_classes: DictModel(num_classes), config=Config)
    register("extra_class", lambda config, *, num_classes: nn.Conv2d(3, num_classes + 1, 1), config=Config)
"""


@case("plugin", "model 'dict_model' (plugin 'tv' (distribution tv-dist 1.0))", "returned a dict with keys ['out']",
      "model(x)['out']", "(N, num_classes, H, W)")
def plugin_model_returning_a_dict(ctx):
    ctx.plugin("tv-dist", "tv", "tv_module", _CONTRACT_BREAKING)
    return ctx.child("model: {name: dict_model}\n")


@case("plugin", "model 'extra_class' (plugin 'tv' (distribution tv-dist 1.0))", "returned 4 channels for 3 classes",
      "num_classes", slow=True)
def plugin_model_with_an_extra_class(ctx):
    ctx.plugin("tv-dist", "tv", "tv_module", _CONTRACT_BREAKING)
    return ctx.child("model: {name: extra_class}\n")
