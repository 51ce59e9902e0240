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
    ("base: _base/default.yaml\ntrainer: {epochs: many}\n", ["trainer.epochs", "expected an integer"]),
    ("base: _base/default.yaml\noptimizer: {lr: -1.0}\n", ["optimizer.lr", "must be greater than 0"]),
    ("base: _base/default.yaml\noptimizer: {lr: 6e-5}\n", ["optimizer.lr", "write 6.0e-5"]),
    ("base: _base/missing.yaml\n", ["base recipe '_base/missing.yaml' not found", "child.yaml"]),
    ("base: _base/default.yaml\nmodel: {name: unet\ntrainer: 1\n", ["YAML syntax error", "child.yaml", "line 3"]),
    ("", ["child.yaml", "is empty"]),
    ("- model\n- data\n", ["child.yaml", "not a mapping"]),
    ("base: _base/default.yaml\ntrainer: {batch_size: 0, accumulate: 0}\n",
     ["trainer.batch_size", "trainer.accumulate", "2 problem(s)"]),
])
def test_bad_recipe_is_a_clear_error(cli, recipe_dir, text, needles):
    path = write(recipe_dir, "child.yaml", text)
    assert_user_error(cli("show", path), *needles)


def test_all_problems_are_reported_at_once(cli, recipe_dir):
    path = write(recipe_dir, "child.yaml",
                 "base: _base/default.yaml\noptimizer: {lr: 6e-5}\ntrainer: {epochs: -1}\nmodel: {width: 0}\n")
    assert_user_error(cli("show", path), "3 problem(s)", "optimizer.lr", "trainer.epochs", "model.width",
                      "_base/default.yaml")


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
