"""Plugin manager and registries: built-ins, entry points, duplicates, unknown names, hook docs."""
import inspect
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pluggy
import pytest

from segbench import hookimpl, hookspecs
from segbench.errors import PluginError, UnknownNameError
from segbench.plugins import make_plugin_manager
from segbench.registry import KINDS, build_registries

REPO = Path(__file__).resolve().parents[1]


def test_every_hookspec_has_documentation():
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("segbench_")]
    assert {f.__name__ for f in specs} == {f"segbench_register_{kind}" for kind in KINDS}
    for spec in specs:
        assert spec.__doc__ and len(spec.__doc__.strip()) > 80, f"{spec.__name__} needs a docstring"


def test_every_kind_has_builtin_entries(registries):
    for kind in KINDS:
        assert len(registries[kind]) > 0, kind


@attrs.frozen
class _Empty:
    pass


def _plugin(kind, name):
    class Plugin:
        @hookimpl
        def segbench_register_losses(self, register):
            register(name, lambda config, **_: None, config=_Empty)
    return Plugin()


def test_a_component_registered_without_config_takes_no_settings(tmp_path):
    from segbench.errors import ConfigError
    from segbench.recipe.load import load_recipe
    from segbench.recipe.plan import build_plan

    class Plugin:
        @hookimpl
        def segbench_register_losses(self, register):
            register("plain", lambda config, **_: None)

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Plugin(), name="thirdparty-plain")
    registries = build_registries(pm)
    base = (REPO / "recipes" / "quickstart.yaml").resolve()
    (tmp_path / "plain.yaml").write_text(f"base: {base}\nloss: {{name: plain}}\n")
    assert build_plan(load_recipe(tmp_path / "plain.yaml"), registries).loss.name == "plain"
    (tmp_path / "extra.yaml").write_text(f"base: {base}\nloss: {{name: plain, weight: 2}}\n")
    with pytest.raises(ConfigError, match=r"loss: unknown key\(s\) weight; valid keys: \(none: it has no settings\)"):
        build_plan(load_recipe(tmp_path / "extra.yaml"), registries)


def test_duplicate_name_is_an_error_naming_both_plugins():
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(_plugin("losses", "cross_entropy"), name="thirdparty-losses")
    with pytest.raises(PluginError) as info:
        build_registries(pm)
    assert "segbench_plugins.losses" in str(info.value) and "thirdparty-losses" in str(info.value)


def test_unknown_name_lists_close_matches_and_available(registries):
    with pytest.raises(UnknownNameError) as info:
        registries.losses.get("cross_entropi")
    assert "'cross_entropy'" in str(info.value) and "Available losses" in str(info.value)


def test_registries_are_values_not_globals():
    pm = pluggy.PluginManager("segbench")
    pm.add_hookspecs(hookspecs)
    pm.register(_plugin("losses", "only_mine"), name="mine")
    assert build_registries(pm).losses.names() == ["only_mine"]


def test_block_list_skips_a_builtin_plugin():
    pm = make_plugin_manager(load_entry_points=False, environ={"SEGBENCH_BLOCK_PLUGINS": "optimizers"})
    assert len(build_registries(pm).optimizers) == 0


def test_a_plugin_raising_at_registration_is_named():
    class Broken:
        @hookimpl
        def segbench_register_models(self, register):
            raise RuntimeError("boom")

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Broken(), name="broken-plugin")
    with pytest.raises(PluginError, match="broken-plugin.*boom"):
        build_registries(pm)


@pytest.fixture(scope="module")
def example_plugin_site(tmp_path_factory):
    """The example distribution really installed (pip) into a private site directory."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(REPO / "tests" / "example_plugin")], check=True)
    return site


def _segbench(site, *args, extra_env=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("SEGBENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "segbench.cli", *args], capture_output=True, text=True, env=env)


def test_example_plugin_is_discovered_through_its_entry_point(example_plugin_site, tmp_path):
    listing = _segbench(example_plugin_site, "list", "models")
    assert listing.returncode == 0, listing.stderr
    assert "tiny_fcn" in listing.stdout and "example" in listing.stdout
    plugins = _segbench(example_plugin_site, "plugins")
    assert "segbench-example-plugin 0.1.0" in plugins.stdout

    from tests.conftest import MINIMAL_RECIPE

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(MINIMAL_RECIPE.replace("{name: unet, width: 8}", "{name: tiny_fcn, channels: 4}"))
    shown = _segbench(example_plugin_site, "show", str(recipe))
    assert shown.returncode == 0, shown.stderr
    assert "tiny_fcn" in shown.stdout

    sys.path.insert(0, str(example_plugin_site))
    try:
        registries = build_registries(make_plugin_manager(environ={}))
        entry = registries.models.get("tiny_fcn")
        import torch

        model = entry.factory(entry.default_config(), num_classes=19)
        assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 19, 8, 8)
    finally:
        sys.path.remove(str(example_plugin_site))


def test_disable_autoload_hides_entry_point_plugins(example_plugin_site):
    listing = _segbench(example_plugin_site, "list", "models", extra_env={"SEGBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "tiny_fcn" not in listing.stdout


def _site_with_plugin(tmp_path, source: str, **more: str) -> Path:
    """A folder for PYTHONPATH holding distribution broken-dist 1.0, whose entry point ``broken`` is ``source``
    (and each of ``more``, entry point name -> source, another)."""
    site = tmp_path / "site"
    dist = site / "broken_dist-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-dist\nVersion: 1.0\n")
    sources = {"broken": source, **more}
    (dist / "entry_points.txt").write_text(
        "[segbench]\n" + "".join(f"{name} = {name}_module_xyz\n" for name in sources))
    for name, text in sources.items():
        (site / f"{name}_module_xyz.py").write_text(text)
    return site


def test_a_plugin_failing_at_import_names_distribution_and_entry_point(tmp_path):
    site = _site_with_plugin(tmp_path, "raise ImportError('needs libfoo')\n")
    result = _segbench(site, "list")
    assert result.returncode == 2
    assert "broken-dist" in result.stderr and "broken_module_xyz" in result.stderr and "needs libfoo" in result.stderr
    assert "Traceback" not in result.stderr
    assert "SEGBENCH_BLOCK_PLUGINS=broken" in result.stderr


REGISTERING_A_TAKEN_NAME = """\
from segbench import hookimpl

@hookimpl
def segbench_register_models(register):
    register("unet", lambda config, num_classes: None)
"""


def test_every_broken_plugin_is_named_in_one_message_and_the_rest_are_left_out(tmp_path):
    """Three plugins broken three ways (at import, a misspelled hook, a registration refused): one try names
    them all, rather than one per try."""
    site = _site_with_plugin(
        tmp_path, "raise ImportError('needs libfoo')\n",
        misspelled=HOOK_WITH_ANOTHER_PARAMETER.replace("segbench_register_models(reg)",
                                                       "segbnech_register_models(register)"),
        taken=REGISTERING_A_TAKEN_NAME)
    result = _segbench(site, "list", "models")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "3 plugin problems" in result.stderr
    for said in ("needs libfoo", "marks 'segbnech_register_models'", "SEGBENCH_BLOCK_PLUGINS=taken"):
        assert said in result.stderr
    listed = _segbench(site, "plugins")  # lists what loads, then the same one message
    assert listed.returncode == 2 and "taken " in listed.stdout and "3 plugin problems" in listed.stderr
    blocked = _segbench(site, "list", "models",
                        extra_env={"SEGBENCH_BLOCK_PLUGINS": "broken,misspelled,taken"})
    assert blocked.returncode == 0 and "unet" in blocked.stdout


HOOK_WITH_ANOTHER_PARAMETER = """\
from segbench import hookimpl

@hookimpl
def segbench_register_models(reg):
    pass
"""


def test_a_hook_with_another_parameter_name_says_how_to_declare_it_and_plugins_lists_the_rest(tmp_path):
    site = _site_with_plugin(tmp_path, HOOK_WITH_ANOTHER_PARAMETER)
    result = _segbench(site, "list", "models")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'broken'" in result.stderr and "broken-dist 1.0" in result.stderr
    assert "declares 'reg'" in result.stderr and "define it as segbench_register_models(register)" in result.stderr
    listed = _segbench(site, "plugins")  # the command that shows what is installed shows it all, and the fault
    assert listed.returncode == 2 and "segbench_plugins.unet" in listed.stdout
    assert "declares 'reg'" in listed.stderr


def test_a_hookimpl_under_a_misspelled_name_gets_the_close_hook(tmp_path):
    site = _site_with_plugin(tmp_path, HOOK_WITH_ANOTHER_PARAMETER.replace("segbench_register_models(reg)",
                                                                           "segbnech_register_models(register)"))
    result = _segbench(site, "list")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "broken-dist 1.0" in result.stderr and "marks 'segbnech_register_models' with @hookimpl" in result.stderr
    assert "did you mean 'segbench_register_models'?" in result.stderr
    listed = _segbench(site, "plugins")  # it loads, so it is listed; its hook's mistake is named too
    assert listed.returncode == 2 and "broken" in listed.stdout and "marks 'segbnech_register_models'" in listed.stderr


@pytest.mark.slow  # the same entry point is found by the default run; tests/test_plugin_boundary.py uses a transform
def test_example_plugin_transform_is_listed_and_usable_in_a_recipe(example_plugin_site, tmp_path):
    listing = _segbench(example_plugin_site, "list", "transforms")
    assert listing.returncode == 0, listing.stderr
    assert any(line.split()[:2] == ["invert", "example"] for line in listing.stdout.splitlines())

    from tests.conftest import MINIMAL_RECIPE

    recipe = tmp_path / "inverted.yaml"
    recipe.write_text(MINIMAL_RECIPE.replace("{name: unet, width: 8}", "{name: tiny_fcn, channels: 4}")
                      .replace("- {name: hflip, p: 0.5}", "- {name: invert, p: 0.25}"))
    shown = _segbench(example_plugin_site, "show", str(recipe), "--smoke")
    assert shown.returncode == 0, shown.stderr
    assert "name: invert" in shown.stdout and "channels: 2" in shown.stdout  # the plugin's smoke variant


def test_a_blocked_name_that_is_no_plugin_is_a_warning_with_the_close_name(capsys):
    from segbench import plugins

    plugins._WARNED_BLOCKED.discard("unnet")
    pm = make_plugin_manager(load_entry_points=False, environ={"SEGBENCH_BLOCK_PLUGINS": "unnet, deeplab"})
    err = capsys.readouterr().err
    assert "SEGBENCH_BLOCK_PLUGINS names 'unnet', which is not an installed plugin" in err
    assert "did you mean 'unet'?" in err and "'deeplab'" not in err  # the real name blocks, without a warning
    assert "segbench_plugins.deeplab" in pm.segbench_blocked and "segbench_plugins.unet" not in pm.segbench_blocked
