"""The plugin boundary: what a third-party plugin declares through its registration, and what the core
checks of it (hook names, the model contract, smoke variants, transforms, error rows)."""
import ast
import json
import shutil
from pathlib import Path

import attrs
import pytest
import torch

from segbench import recipe as recipe_package
from segbench.errors import ConfigError, PluginError
from segbench.plugins import make_plugin_manager
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import DATA_KEYS, build_plan
from segbench.recipe.schema import TOP_LEVEL_KEYS
from segbench.records import read_results
from segbench.registry import SPLIT_KEY, SUBSET_KEY, GroupSettings, build_registries
from tests import engine_plugin, thirdparty_plugin

CORE = Path(recipe_package.__file__).resolve().parents[1]


def registries_with(*plugins, block=""):
    pm = make_plugin_manager(load_entry_points=False, environ={"SEGBENCH_BLOCK_PLUGINS": block})
    pm.register(engine_plugin.EnginePlugin(), name="engine-test-plugin")
    for plugin in plugins:
        pm.register(plugin, name=f"thirdparty-{type(plugin).__name__.lower()}")
    return build_registries(pm)


def write_recipe(folder: Path, text: str, name: str = "toy.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# ---- the core names no plugin component or config key -----------------------------------------------

def _config_keys(cls, seen) -> set[str]:
    if cls in seen or not attrs.has(cls):
        return set()
    seen.add(cls)
    keys = set()
    for field in attrs.fields(cls):
        keys.add(field.name)
        for part in (field.type, *getattr(field.type, "__args__", ())):
            if isinstance(part, type):
                keys |= _config_keys(part, seen)
    return keys


def _core_owned_names() -> set[str]:
    """Names the core defines for itself, which a plugin's key may happen to share."""
    owned = set(TOP_LEVEL_KEYS) | set(DATA_KEYS) | {SPLIT_KEY, SUBSET_KEY}
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any("attrs" in ast.unparse(d) for d in node.decorator_list):
                owned |= {stmt.target.id for stmt in node.body
                          if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)}
    # The core's own words: a results/evaluation record key and CLI option ("checkpoint"), and the
    # split names and parameters of the core's Cityscapes-layout generator (segbench.synth, `segbench synth`),
    # the standard-deviation band of `segbench plot` across seeds, and "random", what results record as the
    # initialisation of a model that declares none.
    return owned | {"checkpoint", "val", "train_extra", "size", "std", "random"}


def _docstrings(tree) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def test_the_core_names_no_builtin_component_or_config_key(registries):
    names, keys = set(), set()
    for kind in registries.by_kind.values():
        for entry in kind:
            names |= {entry.name, *entry.aliases}
            keys |= _config_keys(entry.config, set())
    keys -= _core_owned_names()
    names -= {"csv"}  # the core's `--format csv` (compare), which the csv logger's name shares
    assert {"deeplabv3plus", "synthetic_city", "normalize", "constant", "scratch"} <= names
    assert {"pretrained", "warmup_iterations", "groups", "annotation", "output_stride"} <= keys
    found = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name == "hookspecs.py":  # the plugin authors' documentation may give examples
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and (node.value in names or node.value in keys):
                found.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr in keys and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "config":
                found.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: .config.{node.attr}")
    assert not found, "the core names plugin components or config keys:\n" + "\n".join(found)


def test_resnet50_weight_loading_lives_in_the_plugins():
    assert not (CORE / "backbone_init.py").exists()
    assert "resnet50" not in " ".join(p.read_text(encoding="utf-8").lower()
                                      for p in CORE.rglob("*.py") if p.name != "hookspecs.py")


# ---- hooks and registrations ----------------------------------------------------------------------

def test_a_misspelled_hook_is_an_error_naming_the_plugin_and_the_close_match():
    with pytest.raises(PluginError) as info:
        registries_with(thirdparty_plugin.Misspelled())
    message = str(info.value)
    assert "thirdparty-misspelled" in message and "'segbench_register_model'" in message
    assert "did you mean 'segbench_register_models'" in message


def test_a_hook_under_another_name_with_pluggys_specname_registers():
    class Renamed:
        @thirdparty_plugin.hookimpl(specname="segbench_register_models")
        def register_models(self, register):
            register("renamed_model", thirdparty_plugin.build_tiny_seg, config=thirdparty_plugin.TinySegConfig)

        @thirdparty_plugin.hookimpl
        def register_losses(self, register):  # no specname: no such hook
            pass

    with pytest.raises(PluginError, match=r"marks 'register_losses' with @hookimpl, but segbench has no such hook"):
        registries_with(Renamed())
    del Renamed.register_losses
    assert "renamed_model" in registries_with(Renamed()).models


def test_a_hook_without_the_decorator_is_an_error():
    with pytest.raises(PluginError, match="thirdparty-undecorated.*without the @segbench.hookimpl decorator"):
        registries_with(thirdparty_plugin.Undecorated())


def test_an_unknown_registration_keyword_names_the_plugin_and_the_valid_ones():
    class Plugin:
        @thirdparty_plugin.hookimpl
        def segbench_register_losses(self, register):
            register("mine", lambda config, **_: None, config=thirdparty_plugin.BadConfig, param_groups=dict)

    with pytest.raises(PluginError, match="thirdparty-plugin.*param_groups.*takes: config, aliases, smoke"):
        registries_with(Plugin())


def test_optimizers_declare_their_parameter_groups(registries):
    sgd = registries.optimizers.get("sgd")
    config = build_plan_for_optimizer(registries, "{name: sgd, groups: {backbone: {lr: 1.0e-5}}}")
    assert sgd.groups(config) == {"backbone": GroupSettings(lr=1.0e-5, weight_decay=None)}

    class OneGroup:  # an optimizer that declares no groups: all parameters form one
        @thirdparty_plugin.hookimpl
        def segbench_register_optimizers(self, register):
            register("plain_sgd", lambda config, *, param_groups: torch.optim.SGD(param_groups, lr=0.1),
                     config=thirdparty_plugin.BadConfig)

    entry = registries_with(OneGroup()).optimizers.get("plain_sgd")
    assert entry.groups(entry.default_config()) == {}


def build_plan_for_optimizer(registries, section):
    import yaml

    from segbench.config import structure_config

    data = yaml.safe_load(section)
    entry = registries.optimizers.get(data.pop("name"))
    return structure_config(entry.config, data, path="optimizer")


# ---- transforms -----------------------------------------------------------------------------------

def test_a_third_party_transform_is_usable_in_a_recipe(tmp_path):
    registries = registries_with(thirdparty_plugin.ThirdParty())
    text = engine_plugin.RECIPE.replace("- {name: hflip, p: 0.5}", "- {name: invert, p: 1.0}")
    plan = build_plan(load_recipe(write_recipe(tmp_path, text)), registries)
    assert plan.train_transforms.names == ("invert", "normalize")
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    out, _ = plan.train_transforms(image, torch.zeros(4, 4, dtype=torch.uint8), torch.Generator())
    expected, _ = plan.eval_transforms(image + 255, torch.zeros(4, 4, dtype=torch.uint8), torch.Generator())
    assert torch.equal(out, expected)  # inverted, then normalised

    bad = text.replace("{name: invert, p: 1.0}", "{name: invert, p: 2.0}")
    with pytest.raises(ConfigError) as info:
        build_plan(load_recipe(write_recipe(tmp_path, bad, "bad.yaml")), registries)
    assert [path for path, _ in info.value.problems] == ["data.train_transforms[0].p"]


def test_list_transforms_shows_builtin_and_third_party_transforms(cli, monkeypatch):
    monkeypatch.setattr("segbench.commands._registries", lambda: registries_with(thirdparty_plugin.ThirdParty()))
    status, out, _ = cli("list", "transforms")
    assert status == 0
    assert "invert" in out and "thirdparty-thirdparty" in out
    assert "normalize" in out and "segbench_plugins.transforms" in out


# ---- the model contract -------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "expected"), [
    ("half_size", "returned logits of 16x32 for a 32x64 image"),
    ("dict_out", "returned a dict with keys ['out']"),
    ("extra_class", "returned 4 channels for 3 classes"),
])
def test_a_model_breaking_the_contract_is_refused_before_training(tmp_path, model, expected):
    from segbench.engine.runner import run_stage

    registries = registries_with(thirdparty_plugin.BadModels())
    recipe = load_recipe(write_recipe(tmp_path, engine_plugin.RECIPE.replace("{name: nobn}", f"{{name: {model}}}")))
    with pytest.raises(PluginError) as info:
        run_stage(recipe, registries, runs_dir=tmp_path / "runs", progress=False)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert f"model {model!r} (plugin 'thirdparty-badmodels')" in message
    assert "one tensor of logits (N, num_classes, H, W)" in message and "(1, 3, 32, 64)" in message
    assert expected in message
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt"))  # refused before any training


def test_models_and_list_verbose_show_a_broken_factory_as_an_error_row(cli, monkeypatch):
    # the built-in models are left out: they are large to describe and not what is tested here
    monkeypatch.setattr("segbench.commands._registries",
                        lambda: registries_with(thirdparty_plugin.BadModels(), block="unet,deeplab"))
    status, out, err = cli("models", "--size", "32x64")
    assert status == 0, err
    row = next(line for line in out.splitlines() if line.startswith("| cannot_build |"))
    assert "error:" in row and "thirdparty-badmodels" in row and "needs a GPU with 80 GB" in row
    assert any(line.startswith("| nobn |") and "error" not in line for line in out.splitlines())
    # models that build but return what `segbench run` refuses are error rows too
    row = next(line for line in out.splitlines() if line.startswith("| dict_out |"))
    assert "error:" in row and "returned a dict with keys ['out']" in row
    assert "4 model(s) could not be built" in err

    status, out, _ = cli("list", "models", "-v")
    assert status == 0
    lines = out.splitlines()

    def block(name):  # the lines `list -v` prints under an entry, up to the next entry
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} "))
        end = next((i for i in range(at + 1, len(lines)) if not lines[i].startswith("   ")), len(lines))
        return "\n".join(lines[at + 1:end])

    assert "error:" in block("cannot_build") and "needs a GPU with 80 GB" in block("cannot_build")
    assert "params" in block("nobn") and "error:" not in block("nobn")


# ---- --smoke --------------------------------------------------------------------------------------

def test_smoke_validates_the_recipe_as_written_first(tmp_path, registries, cli):
    text = (Path(__file__).resolve().parents[1] / "recipes" / "_base" / "cityscapes.yaml").read_text()
    broken = write_recipe(tmp_path, text.replace("root: data/cityscapes", "rooot: data/cityscapes") +
                          "model: {name: unet}\noptimizer: {name: adam}\n")
    with pytest.raises(ConfigError) as info:  # smoke replaces the dataset, but the real run would fail
        load_recipe(broken, smoke=True, registries=registries)
    assert any("unknown key(s) rooot" in message for _, message in info.value.problems)
    status, _, err = cli("run", broken, "--smoke", "--runs-dir", tmp_path / "runs")
    assert status == 2 and "rooot" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_an_invalid_smoke_variant_is_blamed_on_its_plugin(tmp_path):
    class BadSmoke:
        @thirdparty_plugin.hookimpl
        def segbench_register_models(self, register):
            register("bad_smoke", thirdparty_plugin.build_tiny_seg, config=thirdparty_plugin.TinySegConfig,
                     smoke=lambda config: attrs.evolve(config, channels=0))

    registries = registries_with(BadSmoke())
    path = write_recipe(tmp_path, engine_plugin.RECIPE.replace("{name: nobn}", "{name: bad_smoke}"))
    build_plan(load_recipe(path), registries)  # valid as written
    with pytest.raises(PluginError, match=r"--smoke variant of model 'bad_smoke' \(plugin 'thirdparty-badsmoke'\)"
                                          r" failed: ValueError: 'channels' must be > 0"):
        load_recipe(path, smoke=True, registries=registries)


def test_a_smoke_variant_substituting_a_name_nobody_registered_is_blamed_on_its_plugin(tmp_path):
    from segbench.registry import Substitute

    class SubstitutesTypo:
        @thirdparty_plugin.hookimpl
        def segbench_register_models(self, register):
            register("big_net", thirdparty_plugin.build_tiny_seg, config=thirdparty_plugin.TinySegConfig,
                     smoke=lambda config: Substitute("tiny_sge", {}))

    registries = registries_with(thirdparty_plugin.ThirdParty(), SubstitutesTypo())
    path = write_recipe(tmp_path, engine_plugin.RECIPE.replace("{name: nobn}", "{name: big_net}"))
    with pytest.raises(PluginError, match=r"^model: the --smoke variant of model 'big_net' \(plugin"
                                          r" 'thirdparty-substitutestypo'\) substitutes 'tiny_sge': unknown models"
                                          r" 'tiny_sge'. Did you mean 'tiny_seg'"):
        load_recipe(path, smoke=True, registries=registries)


@pytest.mark.parametrize("settings", [{"train": 8, "val": 4, "size": [32, 64]}, {"train": -1}])
def test_a_smoke_variant_substitutes_another_dataset_from_its_settings(tmp_path, settings):
    from segbench.registry import Substitute

    class OnDisk:  # a dataset on disk whose --smoke run uses the built-in generated city, without its config class
        @thirdparty_plugin.hookimpl
        def segbench_register_datasets(self, register):
            register("on_disk", lambda config: None, config=engine_plugin.BlobsConfig,
                     smoke=lambda config: Substitute("synthetic_city", {**settings, "split": config.split}))

    registries = registries_with(OnDisk())
    path = write_recipe(tmp_path, engine_plugin.RECIPE.replace("name: blobs,", "name: on_disk,"))
    if settings["train"] < 0:
        with pytest.raises(PluginError, match=r"substitutes 'synthetic_city' with settings it refuses:"
                                              r" synthetic_city.train: must be at least 0"):
            load_recipe(path, smoke=True, registries=registries)
        return
    train = build_plan(load_recipe(path, smoke=True, registries=registries), registries).datasets["train"]
    assert train.name == "synthetic_city" and (train.config.train, train.config.size) == (8, (32, 64))


def test_smoke_applies_each_components_declared_variant_only(tmp_path):
    registries = registries_with(thirdparty_plugin.ThirdParty())
    text = engine_plugin.RECIPE.replace("{name: nobn}", "{name: tiny_seg, channels: 16, pretrained: imagenet}")
    text = text.replace("{name: constant}", "{name: poly, warmup_iterations: 500}")
    smoke = load_recipe(write_recipe(tmp_path, text), ["trainer.max_iterations=3"], smoke=True,
                        registries=registries)
    model = smoke.data["model"]
    assert model == {"name": "tiny_seg", "channels": 2, "pretrained": "imagenet"}  # never a ResNet50 stand-in
    assert smoke.data["scheduler"]["warmup_iterations"] == 1
    assert smoke.data["trainer"]["max_iterations"] == 3  # the command line's trainer settings win
    assert smoke.data["data"]["dataset"] == {"name": "blobs", "count": 12, "size": 16}  # no smoke variant
    plan = build_plan(smoke, registries)
    assert plan.model.config.channels == 2 and smoke.smoke


def test_cityscapes_recipes_smoke_on_the_generated_tree_with_the_resnet_stand_in(registries):
    path = Path(__file__).resolve().parents[1] / "recipes" / "deeplab_pretrained.yaml"
    smoke = load_recipe(path, smoke=True, registries=registries)
    data = smoke.data["data"]
    assert "dataset" not in data and {data[role]["name"] for role in ("train", "select", "report")} == \
        {"synthetic_city"}
    assert data["train"]["subset"]["first"] == 2 and data["train"]["subset"]["invert"] is True
    assert data["train_transforms"][1]["size"] == [64, 128]
    assert Path(smoke.data["model"]["pretrained"]).is_file()
    assert load_recipe(path).data["model"]["pretrained"] == "imagenet"


def test_smoke_runs_are_marked_and_left_out_of_compare(tmp_path, cli, capsys):
    from segbench.engine.runner import run_stage

    registries = registries_with()
    recipe_path = write_recipe(tmp_path, engine_plugin.RECIPE)
    real = run_stage(load_recipe(recipe_path, ["trainer.epochs=1"]), registries, runs_dir=tmp_path / "runs",
                     progress=False)
    smoke = run_stage(load_recipe(recipe_path, smoke=True, registries=registries), registries,
                      runs_dir=tmp_path / "runs", progress=False)
    assert smoke.path != real.path
    assert json.loads(smoke.results.read_text())["smoke"] is True
    assert json.loads(real.results.read_text())["smoke"] is False
    assert read_results(smoke.results).smoke and not read_results(real.results).smoke

    capsys.readouterr()
    status, out, err = cli("compare", tmp_path / "runs", "--format", "csv")
    assert status == 0 and real.path.name in out and smoke.path.name not in out
    assert "left out 1 smoke run(s)" in err and "--include-smoke" in err
    status, out, _ = cli("compare", tmp_path / "runs", "--include-smoke")
    assert status == 0 and "complete (smoke)" in out
    assert len([line for line in out.splitlines() if line.startswith("| toy (")]) == 2

    # Only smoke runs: every command that reads a runs folder says so and offers the option it has.
    shutil.rmtree(real.path)
    for command, extra in (("compare", []), ("report", ["--out", tmp_path / "report", "--images", "0"]),
                           ("plot", [])):
        status, _, err = cli(command, tmp_path / "runs", *extra)
        assert status == 2 and f"holds only smoke runs (1: {smoke.path.name}), checks on tiny data that {command}" \
            f" leaves out; add --include-smoke" in err, err
        status, _, err = cli(command, tmp_path / "runs", *extra, "--include-smoke")
        assert status == 0, err
    status, _, err = cli("compare", smoke.path)
    assert status == 2 and f"{smoke.path} is a smoke run" in err and "--runs-dir" not in err
