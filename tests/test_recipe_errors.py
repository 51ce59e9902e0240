"""Every recipe mistake exits 2 with a message naming the file and the key, and no traceback."""
import pytest


def write(recipe_dir, name, text):
    path = recipe_dir / name
    path.write_text(text)
    return path


def assert_user_error(result, *needles):
    status, out, err = result
    assert status == 2, (out, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


@pytest.mark.parametrize("text, needles", [
    ("base: _base/default.yaml\nmodle: {name: unet}\n", ["modle", "unknown top-level key", "child.yaml"]),
    ("base: _base/default.yaml\nmodel: {widht: 8}\n", ["model", "unknown key(s) widht", "valid keys"]),
    ("base: _base/default.yaml\nmodel: {name: unett}\n", ["model.name", "unknown models 'unett'", "'unet'"]),
    # a dataset named once for every role is reported once, where it is named
    ("base: _base/default.yaml\ndata: {dataset: {name: synthetic_cty}}\n",
     ["1 problem(s)", "data.dataset.name: unknown datasets 'synthetic_cty'"]),
    ("base: _base/default.yaml\ntrainer: {epochs: many}\n", ["trainer.epochs", "expected an integer"]),
    ("base: _base/default.yaml\noptimizer: {lr: -1.0}\n", ["optimizer.lr", "must be greater than 0"]),
    ("base: _base/default.yaml\noptimizer: {lr: 6e-5}\n", ["optimizer.lr", "write 6.0e-5"]),
    ("base: _base/missing.yaml\n", ["base recipe '_base/missing.yaml' not found", "child.yaml"]),
    ('base: "_base/default\\0.yaml"\n', ["`base:` must be the path of another recipe", "'_base/default\\x00.yaml'"]),
    ("base: _base\n", ["`base: _base` names", "which is a folder"]),
    ("base: _base/default.yaml\nmodel: {name: unet\ntrainer: 1\n", ["YAML syntax error", "child.yaml", "line 3"]),
    ("", ["child.yaml", "is empty"]),
    ("- model\n- data\n", ["child.yaml", "not a mapping"]),
    ("base: _base/default.yaml\nevaluation: {window: [4, 8, 16]}\n", ["evaluation.window: expected 2 values, got"
                                                                       " [4, 8, 16]"]),
    ("base: _base/default.yaml\nmodel: {channels: [], width: null}\n",
     ["model.channels: must hold at least 2 values, got 0"]),
    ("base: _base/default.yaml\ntrainer:\n", ["trainer: is empty (null), which would drop every trainer setting"]),
    ("base: _base/default.yaml\nevaluation: null\n", ["evaluation: is empty (null)", "{_replace_: true}"]),
    ("base: _base/default.yaml\ntrainer: {device: gpu}\n", ["trainer.device: 'gpu' is not a device; use auto, cpu,"]),
    ("base: _base/default.yaml\ntrainer: {batch_size: 0, accumulate: 0}\n",
     ["trainer.batch_size", "trainer.accumulate", "2 problem(s)"]),
    ("base: _base/default.yaml\ntrainer: {device: 'cuda:128'}\n", ["trainer.device: 'cuda:128' is not a device"]),
])
def test_bad_recipe_is_a_clear_error(cli, recipe_dir, text, needles):
    path = write(recipe_dir, "child.yaml", text)
    assert_user_error(cli("show", path), *needles)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:3", "mps", "xpu:0"])
def test_every_device_torch_names_for_cpu_cuda_mps_and_xpu_is_a_valid_setting(cli, recipe_dir, device):
    path = write(recipe_dir, "child.yaml", f"base: _base/default.yaml\ntrainer: {{device: '{device}'}}\n")
    status, out, err = cli("show", path)
    assert status == 0, err


def test_a_run_whose_recipe_kept_a_bare_trainer_line_still_opens(recipe_dir, registries):
    """Earlier releases trained such recipes (with the defaults): their runs' recipe.yaml holds `trainer: null`."""
    from segbench.recipe.load import load_recipe
    from segbench.recipe.plan import build_plan

    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\ntrainer:\nevaluation:\n")
    plan = build_plan(load_recipe(path), registries, training=False)
    assert plan.trainer.epochs == 1 and plan.evaluation.mode == "whole"


def test_all_problems_are_reported_at_once(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml",
                 "base: _base/default.yaml\noptimizer: {lr: 6e-5}\ntrainer: {epochs: -1}\nmodel: {width: 0}\n")
    assert_user_error(cli("show", path), "3 problem(s)", "optimizer.lr", "trainer.epochs", "model.width",
                      "_base/default.yaml")


def test_a_wrong_choice_does_not_hide_a_range_error_in_the_same_section(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n"
                 "model: {name: unet, skip: addd, deep_supervision: -3, width: 0, stem_stride: 2}\n"
                 "trainer: {epochs: many, batch_size: 0}\n")
    assert_user_error(cli("show", path), "5 problem(s)", "model.skip: 'addd' is not allowed",
                      "model.deep_supervision: must be at least 0", "model.width: must be", "trainer.epochs",
                      "trainer.batch_size")


def test_base_cycle_shows_the_chain(cli, recipe_dir):
    write(recipe_dir, "a.yaml", "base: b.yaml\n")
    write(recipe_dir, "b.yaml", "base: a.yaml\n")
    assert_user_error(cli("show", recipe_dir / "a.yaml"), "cycle", "a.yaml -> ", "b.yaml -> ")


def test_override_on_a_missing_path(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    assert_user_error(cli("show", path, "trainr.epochs=2"), "trainr.epochs=2", "'trainr' is not a section")
    assert_user_error(cli("show", path, "trainer.epochs"), "bad override", "key.sub=value")


def test_override_of_a_section_the_recipe_leaves_at_its_defaults(cli, recipe_dir):
    import yaml

    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    assert "evaluation" not in yaml.safe_load(cli("show", path)[1])
    status, out, err = cli("show", path, "evaluation.flip=true")
    assert status == 0, err
    assert yaml.safe_load(out)["evaluation"] == {"flip": True}
    assert_user_error(cli("show", path, "evaluation.flipp=true"), "evaluation", "flipp")


def test_unknown_key_inside_a_transform(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml",
                 "base: _base/default.yaml\ndata: {train_transforms: [{name: hflip, q: 1}]}\n")
    assert_user_error(cli("show", path), "data.train_transforms[0]", "q")


def test_show_resolves_two_levels_of_inheritance_with_overrides(cli, recipe_dir):
    write(recipe_dir, "coarse.yaml", "base: _base/default.yaml\noptimizer: {lr: 1.0e-4}\ntrainer: {epochs: 3}\n")
    fine = write(recipe_dir, "fine.yaml", "base: coarse.yaml\noptimizer: {lr: 1.0e-5}\n")
    status, out, err = cli("show", fine, "trainer.batch_size=4")
    assert status == 0, err
    import yaml

    resolved = yaml.safe_load(out)
    assert resolved["optimizer"] == {"name": "adam", "lr": 1.0e-5}
    assert resolved["trainer"] == {"epochs": 3, "batch_size": 4}
    assert resolved["model"] == {"name": "unet", "width": 8}
    assert "fine.yaml <- " in out and "coarse.yaml <- " in out


def test_hash_is_stable_under_formatting(recipe_dir):
    from segbench.recipe.load import load_recipe

    a = write(recipe_dir, "a.yaml", "base: _base/default.yaml\ntrainer: {epochs: 2, batch_size: 2}\n")
    b = write(recipe_dir, "b.yaml", "base: _base/default.yaml\n\ntrainer:\n  batch_size: 2\n  epochs:   2\n")
    assert load_recipe(a).hash == load_recipe(b).hash
    assert load_recipe(a).hash != load_recipe(a, ["trainer.epochs=3"]).hash


# ---- messages point at what the user wrote --------------------------------------------------------

def test_an_override_changing_a_component_name_replaces_its_options(cli, recipe_dir):
    import yaml

    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\nloss: {name: cross_entropy,"
                                            " label_smoothing: 0.1}\n")
    status, out, err = cli("show", path, "loss.name=ohem_cross_entropy", "loss.threshold=0.5")
    assert status == 0, err
    assert yaml.safe_load(out)["loss"] == {"name": "ohem_cross_entropy", "threshold": 0.5}
    status, out, err = cli("show", path, "loss.name=cross_entropy")  # the same name: the options stay
    assert status == 0, err
    assert yaml.safe_load(out)["loss"] == {"name": "cross_entropy", "label_smoothing": 0.1}


@pytest.mark.parametrize("written", ["6e-5", "1e2", "1E2", "1.5e3", "-2e-3", "+3e4", "7.5e1", "2.5E10"])
def test_the_exponent_hint_is_yaml_that_reads_as_the_number(cli, recipe_dir, written):
    import re

    import yaml

    path = write(recipe_dir, "child.yaml", f"base: _base/default.yaml\noptimizer: {{lr: {written}}}\n")
    assert isinstance(yaml.safe_load(written), str)  # YAML 1.1 reads it as text
    status, _out, err = cli("show", path)
    assert status == 2, err
    hint = re.search(r"write (\S+)\)", err).group(1)
    assert yaml.safe_load(hint) == float(written), (written, hint)


def test_an_exponent_for_an_integer_suggests_the_integer(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\ntrainer: {max_iterations: 1e3}\n")
    assert_user_error(cli("show", path), "trainer.max_iterations", "write 1000")


@pytest.mark.parametrize("base", [".", "..", "_base"])
def test_a_base_that_names_a_folder_names_the_base_key(cli, recipe_dir, base):
    path = write(recipe_dir, "child.yaml", f"base: {base}\n")
    assert_user_error(cli("show", path), f"`base: {base}`", "is a folder", "child.yaml")


def test_a_string_where_a_list_goes_is_refused_not_split_into_letters(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n"
                                           "data: {train: {split: train, subset: {cities: aachen}}}\n")
    assert_user_error(cli("show", path), "data.train.subset.cities", "expected a list", "write [aachen]")


def test_a_shared_dataset_key_is_reported_once(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n"
                                           "data: {dataset: {train: -4, colour: red}}\n")
    status, _out, err = cli("show", path)
    assert status == 2
    assert err.count("data.dataset.train") == 1 and "data.train.train" not in err, err
    assert err.count("colour") == 1 and "data.dataset" in err, err
    assert "2 problem(s)" in err, err


@pytest.mark.parametrize("blocked", ["unet", "segbench_plugins.unet"])
def test_a_component_of_a_blocked_plugin_says_so(cli, recipe_dir, monkeypatch, blocked):
    monkeypatch.setenv("SEGBENCH_BLOCK_PLUGINS", f"other, {blocked}")
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    assert_user_error(cli("show", path), "model.name", "'unet'", "segbench_plugins.unet", "blocked",
                      f"Remove {blocked!r} from SEGBENCH_BLOCK_PLUGINS")  # as the variable names it


def test_a_transform_of_a_blocked_plugin_says_so(cli, recipe_dir, monkeypatch):
    monkeypatch.setenv("SEGBENCH_BLOCK_PLUGINS", "transforms")
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    assert_user_error(cli("show", path), "transforms[", "'normalize'", "segbench_plugins.transforms", "blocked",
                      "Remove 'transforms' from SEGBENCH_BLOCK_PLUGINS")


@pytest.mark.parametrize("text, needles", [
    ("optimizer: {name: sgd, lr: 0.1}\noptimizer: {name: sgd, lr: 1000}\n",
     ["duplicate key 'optimizer'", "line 3", "first given on line 2"]),
    ("trainer: {epochs: 1, epochs: 2}\n", ["duplicate key 'epochs'", "line 2"]),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
     "description: *h\n", ["is refused", "expands to more than 100,000 values"]),
    ("description: " + "[" * 100 + "]" * 100 + "\n", ["is refused", "nested more than 32 deep"]),
    ("description: " + "{a: " * 2000 + "}" * 2000 + "\n", ["child.yaml"]),
    ("description: |\n" + "  text\n" * 200_000, ["larger than 1,048,576 bytes"]),
])
def test_hostile_yaml_is_refused_quickly(cli, recipe_dir, text, needles):
    import time

    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n" + text)
    started = time.process_time()
    assert_user_error(cli("show", path), *needles)
    assert time.process_time() - started < 10  # CPU time: a bound against exponential work, not a benchmark


def test_hostile_yaml_in_an_override_is_refused(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    assert_user_error(cli("show", path, "description={a: 1, a: 2}"), "override", "duplicate key 'a'")
    assert_user_error(cli("show", path, "description=" + "[" * 60 + "]" * 60), "override", "nested more than")


def test_normalisation_statistics_must_be_finite_and_positive(cli, recipe_dir):
    for std in ("[0.0, 0.2, 0.2]", "[.nan, 0.2, 0.2]", "[58.4, 57.1, 57.4]"):
        path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n"
                                               f"data: {{train_transforms: [{{name: normalize, std: {std}}}]}}\n")
        assert_user_error(cli("show", path), "data.train_transforms[0].std")


# ---- YAML values and shapes that are not plain recipe data -----------------------------------------

@pytest.mark.parametrize("text, needles", [
    ("description: !!set {a, b}\n", ["line 2", "`!!set`", "not plain data"]),
    ("description: !!binary aGVsbG8=\n", ["line 2", "`!!binary`", "not plain data"]),
    ("description: !!omap [{a: 1}]\n", ["line 2", "`!!omap`"]),
    ("trainer: {epochs: " + "9" * 5000 + "}\n", ["line 2", "5,000 characters", "no recipe value is that large"]),
    ("? [a, b]\n: 1\n", ["line 2", "a key is a list or a mapping", "write the key as text"]),
    ("data: null\n", ["data: expected a mapping with the keys dataset, train", "got None"]),
    ("description: {a: 1}\n", ["description: expected text", "description: |"]),
    ("trainer: {true: 2, a: 1}\n", ["trainer: unknown key(s) True, a", "valid keys: epochs"]),
    ("optimizer: {groups: [backbone]}\n", ["optimizer.groups: expected a mapping of keys to values",
                                           "list ['backbone']"]),
    ("optimizer: {groups: {backbone: [1]}}\n", ["optimizer.groups.backbone: expected a mapping of keys to values"]),
    ("trainer: {_replace_: yes please, epochs: 1}\n", ["child.yaml", "trainer._replace_ is 'yes please'",
                                                       "takes true"]),
    ("data: {train_transforms: [{name: normalize, _replace_: 1}]}\n", ["data.train_transforms[0]._replace_ is 1"]),
])
def test_values_that_are_not_plain_recipe_data_are_clear_errors(cli, recipe_dir, text, needles):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n" + text)
    status, out, err = cli("show", path)
    assert_user_error((status, out, err), *needles)
    assert len(err) < 2000, err  # the message quotes the value, not all 5,000 digits of it


@pytest.mark.parametrize("override, needles", [
    ("description=!!set {a}", ["override", "`!!set`"]),
    ("trainer.epochs=" + "9" * 5000, ["override", "5,000 characters", "... (5,017 characters)"]),
    ("data=null", ["data: expected a mapping"]),
    ("trainer={_replace_: 1, epochs: 1}", ["trainer._replace_ is 1"]),
    ("description=!!python/object/apply:os.system [true]", ["not valid YAML", "Write plain YAML after '='"]),
])
def test_hostile_override_values_are_clear_errors(cli, recipe_dir, override, needles):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    status, out, err = cli("show", path, override)
    assert_user_error((status, out, err), *needles)
    assert len(err) < 2000, err


def test_a_date_is_text_in_a_recipe(cli, recipe_dir):
    import yaml

    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\ndescription: 2024-01-01\n")
    status, out, err = cli("show", path)
    assert status == 0, err
    assert yaml.safe_load(out)["description"] == "2024-01-01"
    status, _out, err = cli("show", path, "trainer.epochs=2024-01-01")
    assert_user_error((status, _out, err), "trainer.epochs", "expected an integer, got the string '2024-01-01'")


def test_a_replace_marker_in_a_recipe_without_base_is_applied_not_an_unknown_key(cli, recipe_dir):
    import yaml

    text = (recipe_dir / "_base" / "default.yaml").read_text().replace("trainer: {", "trainer: {_replace_: true, ")
    assert "_replace_" in text
    path = write(recipe_dir, "alone.yaml", text)
    status, out, err = cli("show", path)
    assert status == 0, err
    assert yaml.safe_load(out)["trainer"] == {"epochs": 1, "batch_size": 2}  # the marker is gone


@pytest.mark.parametrize("base, kind", [("/dev/null", "not a regular file"), (".", "a folder")])
def test_a_base_that_is_not_a_file_says_what_it_is(cli, recipe_dir, base, kind):
    path = write(recipe_dir, "child.yaml", f"base: {base}\n")
    assert_user_error(cli("show", path), f"`base: {base}`", kind)


@pytest.mark.parametrize("command", ["show", "run"])
def test_a_recipe_path_that_is_a_pipe_is_refused_not_waited_on(cli, tmp_path, command):
    import os

    os.mkfifo(tmp_path / "pipe.yaml")  # opened for reading, it would wait for a writer that never comes
    assert_user_error(cli(command, tmp_path / "pipe.yaml"), "pipe.yaml", "not a regular file")


# ---- the command line: experiments, paths ---------------------------------------------------------------

@pytest.mark.parametrize("grid", ["trainer.batch_size=2,0", "trainer.precision=fp32,fp16",
                                  "optimizer.lr=1.0e-3,-1.0"])
def test_a_bad_grid_point_is_refused_before_any_run_trains(cli, recipe_dir, grid):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    fine = write(recipe_dir, "fine.yaml", "base: child.yaml\nstrategy: {name: finetune}\n")
    for recipe in (path, fine):
        status, out, err = cli("run", recipe, "--runs-dir", recipe_dir / "runs", "--grid", grid)
        assert_user_error((status, out, err), grid.partition("=")[0].split(".")[-1])
        assert "run 1 of 2" not in err  # nothing started: the first (valid) point did not train
        assert not (recipe_dir / "runs").exists() or not any((recipe_dir / "runs").iterdir())


@pytest.mark.parametrize("args, needles", [
    (["--grid", "trainer.epochs=1,1"], ["--grid 'trainer.epochs=1,1' gives the value 1 twice"]),
    (["--grid", "optimizer.lr=1.0e-3,0.001"], ["gives the value 0.001 twice"]),
    (["--seeds", "0,,1"], ["--seeds '0,,1'", "separated by commas"]),
    (["--seeds", "0,1,"], ["--seeds '0,1,'"]),
    (["--seeds", ""], ["--seeds ''", "separated by commas"]),  # not the recipe's own seed in silence
    (["--runs-dir", ""], ["--runs-dir", "the path is empty"]),
])
def test_an_experiment_that_would_run_something_twice_or_somewhere_else_is_refused(cli, recipe_dir, args, needles):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    status, out, err = cli("run", path, *args)
    assert_user_error((status, out, err), *needles)


def test_an_empty_runs_variable_means_the_default_runs_folder(monkeypatch):
    from pathlib import Path

    from segbench.runs import default_runs_dir

    monkeypatch.setenv("SEGBENCH_RUNS", "")  # not the current folder
    assert default_runs_dir() == Path("runs")


@pytest.mark.parametrize("text, overrides, needles", [
    ("slurm: {gpus: 1}\n", [], ["slurm: unknown key(s) gpus", "gpus_per_node"]),
    ("slurm: gpu\n", [], ["slurm: expected a mapping"]),
    ("slurm: {time: 10:00:00}\n", [], ["slurm.time", "base-60 number 36000", "quote it"]),
    ("", ["slurm.time=abc"], ["slurm.time", "'abc' is not a Slurm time limit"]),
])
def test_show_checks_the_slurm_section_as_emit_slurm_reads_it(cli, recipe_dir, text, overrides, needles):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n" + text)
    assert_user_error(cli("show", path, *overrides), *needles)


def test_show_prints_a_slurm_override_as_emit_slurm_uses_it(cli, recipe_dir):
    import yaml

    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\nslurm: {gpus_per_node: 1}\n")
    status, out, err = cli("show", path, "slurm.time=10:00:00")
    assert status == 0, err
    assert yaml.safe_load(out)["slurm"] == {"gpus_per_node": 1, "time": "10:00:00"}  # not the number 36000


# ---- stages: what a fine-tuning stage starts from is checked by `show` and before anything trains --------

@pytest.mark.parametrize("source, needles", [
    ("nope.yaml", ["strategy.source 'nope.yaml'", "does not exist", "relative to this recipe"]),
    (".", ["strategy.source '.'", "is a folder"]),
    ("''", ["strategy.source '' is empty"]),
    ("fine.yaml", ["stage cycle", "fine.yaml -> "]),
    ("broken.yaml", ["broken.yaml holds a YAML list"]),
])
def test_show_checks_the_stage_a_fine_tuning_recipe_starts_from(cli, recipe_dir, source, needles):
    write(recipe_dir, "broken.yaml", "- not a recipe\n")
    path = write(recipe_dir, "fine.yaml", f"base: _base/default.yaml\nstrategy: {{name: finetune, source: {source}}}\n")
    assert_user_error(cli("show", path), *needles)


def test_fine_tuning_another_model_is_refused_before_the_upstream_stage_trains(cli, recipe_dir):
    path = write(recipe_dir, "fine.yaml", "base: _base/default.yaml\nstrategy: {name: finetune}\n"
                                          "model: {name: enet, _replace_: true}\n")
    for command in (["show", path], ["run", path, "--runs-dir", recipe_dir / "runs"]):
        assert_user_error(cli(*command), "fine.yaml", "starts from", "trains model 'unet'",
                          "this recipe's model is 'enet'", "use strategy scratch")
    assert not (recipe_dir / "runs").exists()  # the upstream stage did not train


def test_a_runs_directory_that_is_a_file_is_called_a_file(cli, tmp_path):
    (tmp_path / "a_file").write_text("x")
    assert_user_error(cli("compare", tmp_path / "a_file"), "runs directory", "is a file, not a folder")
    assert (tmp_path / "a_file").read_text() == "x"


def test_make_folder_names_the_option_and_what_is_there(tmp_path):
    from segbench.atomic import make_folder
    from segbench.errors import SegbenchError

    (tmp_path / "f").write_text("x")
    with pytest.raises(SegbenchError, match="--export-labelids .* is a file; give a folder"):
        make_folder(tmp_path / "f", "--export-labelids")
    with pytest.raises(SegbenchError, match="--out .*cannot create the folder"):
        make_folder(tmp_path / "f" / "sub", "--out")
    make_folder(tmp_path / "new" / "sub", "--out")
    assert (tmp_path / "new" / "sub").is_dir()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_given_before_or_after_the_command(cli, recipe_dir, where):
    args = ["show", recipe_dir / "nope.yaml"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    status, _out, err = cli(*args)
    assert status == 2 and "Traceback" in err and "nope.yaml does not exist" in err, err
    status, _out, err = cli("show", recipe_dir / "nope.yaml")
    assert status == 2 and "Traceback" not in err, err


def test_a_component_without_settings_says_so_for_an_unknown_key(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml", "base: _base/default.yaml\n")
    assert_user_error(cli("show", path, "model.name=enet", "model.width=8"),
                      "model: unknown key(s) width; valid keys: (none: it has no settings)")


def test_list_of_an_unknown_kind_suggests_the_close_one(cli):
    assert_user_error(cli("list", "model"), "unknown kind 'model' (did you mean 'models'?)", "class_weightings")
