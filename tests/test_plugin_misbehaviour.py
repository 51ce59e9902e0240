"""A plugin component that breaks its contract stops the run with a PluginError or DataError naming the
component, its plugin and what to return, before a torch traceback or a silently wrong score."""
import pathlib
import typing

import attrs
import pytest

from segbench import hookimpl
from segbench.config import structure_config
from segbench.errors import DataError, PluginError, RecipeError
from segbench.recipe.load import load_recipe
from segbench.transforms import default_specs
from tests import engine_plugin, misbehaving_plugin
from tests.test_plugin_boundary import registries_with, write_recipe

PLUGIN = "plugin 'thirdparty-misbehaving'"


def run(tmp_path, *replacements):
    from segbench.engine.runner import run_stage

    text = engine_plugin.RECIPE.replace("epochs: 3", "epochs: 1")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    recipe = load_recipe(write_recipe(tmp_path, text))
    registries = registries_with(misbehaving_plugin.Misbehaving())
    return run_stage(recipe, registries, runs_dir=tmp_path / "runs", progress=False)


def assert_nothing_saved(tmp_path):
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt"))
    assert not list((tmp_path / "runs").glob("*/results.json"))


@pytest.mark.parametrize("value", [250, 3])  # an ignore value other than the dataset's; one class too many
def test_stray_label_values_are_refused_naming_the_file_and_the_values(tmp_path, value):
    with pytest.raises(DataError) as info:
        run(tmp_path, ("{name: blobs, count: 12, size: 16}", f"{{name: stray_labels, count: 12, size: 16,"
                                                              f" value: {value}}}"))
    message = str(info.value)
    assert "/memory/" in message and "_label.png" in message and f"train id(s) {value}" in message  # the label file
    assert "neither a class (0..2) nor the dataset's ignore index 255" in message
    assert_nothing_saved(tmp_path)


def test_a_dataset_returning_numpy_arrays_is_told_to_return_tensors(tmp_path):
    with pytest.raises(DataError, match=r"/memory/train/\d+\.png: expected torch tensors \(image, mask\), got a"
                                        r" numpy.ndarray.*torch.from_numpy"):
        run(tmp_path, ("{name: blobs, count: 12, size: 16}",
                       "{name: stray_labels, count: 12, size: 16, value: 1, numpy: true}"))


def test_a_dataset_failing_to_read_an_item_names_the_file_and_the_dataset(tmp_path):
    with pytest.raises(DataError) as info:
        run(tmp_path, ("{name: blobs, count: 12, size: 16}", "{name: raising_item, count: 12, size: 16}"))
    message = str(info.value)
    assert "/memory/" in message and "the dataset (tests.misbehaving_plugin.RaisingItem) failed in __getitem__(3)"\
        in message and "FileNotFoundError: /data/img_3.png" in message
    assert_nothing_saved(tmp_path)


def test_a_dataset_whose_data_is_missing_says_which_section_and_plugin_looked(tmp_path):
    from segbench.errors import DataUnavailableError

    expected = rf"^data\.\w+: dataset 'not_here' \({PLUGIN}\): no data in /nowhere$"
    with pytest.raises(DataUnavailableError, match=expected):
        run(tmp_path, ("name: blobs,", "name: not_here,"))


def test_a_dataset_returning_more_than_the_pair_is_named(tmp_path):
    with pytest.raises(PluginError, match=r"/memory/.*the dataset \(tests.misbehaving_plugin.ThreeTuple\) returned a"
                                          r" tuple of 3 from __getitem__\(\d+\); it must return the pair"):
        run(tmp_path, ("{name: blobs, count: 12, size: 16}", "{name: three_tuple, count: 12, size: 16}"))


@pytest.mark.parametrize(("step", "expected"), [
    ("half_image", "returned an image of 8x8 with a mask of 16x16 (from 16x16): a step that changes the image's"
                   " size must change the mask's the same way"),
    ("image_only", "must return the pair (image, mask) of tensors, but returned torch.uint8 (3, 16, 16)"),
    ("floats_early", "returned a torch.float32 image; steps before the list's final step work on uint8"),
    ("new_labels", "returned a mask holding train id(s) 77, neither a class (0..2) nor the ignore index 255"),
    ("new_labels_in_place", "returned a mask holding train id(s) 77, neither a class (0..2) nor the ignore index"),
])
def test_a_transform_breaking_its_contract_is_named_with_its_recipe_path(tmp_path, step, expected):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("{name: hflip, p: 0.5}", f"{{name: {step}}}"))
    message = str(info.value)
    assert message.startswith(f"data.train_transforms[0]: transform {step!r} ({PLUGIN}")
    assert expected in message
    assert_nothing_saved(tmp_path)


def test_a_final_step_that_leaves_the_image_uint8_is_named_not_the_model(tmp_path):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("- {name: normalize}", "- {name: uint8_final}"))
    message = str(info.value)
    assert message.startswith(f"data.train_transforms[1]: transform 'uint8_final' ({PLUGIN}")
    assert "a torch.uint8 image; the list's final step returns the model's input as float32" in message


@pytest.mark.parametrize(("loss", "expected"), [
    ("per_pixel_loss", "a tensor of shape (2, 16, 16) (reduce it"),
    ("detached_loss", "a tensor without a gradient"),
    ("integer_loss", "a torch.int64 tensor"),
])
def test_a_loss_that_cannot_be_backpropagated_is_named(tmp_path, loss, expected):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("{name: cross_entropy}", f"{{name: {loss}}}"))
    message = str(info.value)
    assert message.startswith(f"loss: loss {loss!r} ({PLUGIN}")
    assert "must return a floating-point scalar tensor" in message and expected in message
    assert_nothing_saved(tmp_path)


@pytest.mark.parametrize(("model", "expected"), [
    ("returns_none", "its factory returned builtins.NoneType, not a torch.nn.Module"),
    ("train_only_half_size", "in training mode must return one float tensor of logits (2, 3, 16, 16) for this"
                             " batch (N, num_classes, H, W at the input size), but it returned shape (2, 3, 8, 8)"),
    ("auxiliary_missing_class", "in training mode must return auxiliary logits (DeepSupervision.auxiliary[0]) as"
                                " a float tensor (2, 3, 16, 16) for this batch (N, num_classes, H, W at the input"
                                " size, or smaller), but it returned shape (2, 2, 8, 8)"),
    ("nan_at_init", "returned NaN or infinite logits for an all-zero image"),
    ("detached_logits", "but it returned a tensor without a gradient (detached"),
])
def test_a_model_breaking_its_contract_outside_the_eval_check_is_named(tmp_path, model, expected):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("{name: nobn}", f"{{name: {model}}}"))
    message = str(info.value)
    assert message.startswith(f"model: model {model!r} ({PLUGIN}") and expected in message
    assert_nothing_saved(tmp_path)


def test_a_batch_of_one_that_batch_norm_refuses_is_blamed_on_the_batch_size_not_the_model(tmp_path):
    with pytest.raises(RecipeError) as info:
        run(tmp_path, ("{name: nobn}", "{name: pooled_batch_norm}"), ("batch_size: 2", "batch_size: 1"))
    message = str(info.value)
    assert message.startswith("model: model 'pooled_batch_norm'") and "set trainer.batch_size to 2 or more" in message
    assert "Fix the plugin" not in message
    assert_nothing_saved(tmp_path)


# ---- registrations ------------------------------------------------------------------------------

@attrs.frozen
class ZeroChannels:
    channels: int = attrs.field(default=0, validator=attrs.validators.gt(0))  # its own default fails


@attrs.frozen
class RequiredAndBadDefault:
    root: str
    depth: int = attrs.field(default=-1, validator=attrs.validators.ge(0))


@attrs.frozen
class TextForNumber:
    channels: int = "8"  # would reach the factory as a string: recipes that set it must write a number


@attrs.frozen
class Fine:
    pass


@attrs.frozen
class WithNameField:
    name: str = "my-run"  # `name:` in a recipe chooses the component: this could never be set


@attrs.frozen
class UnionOfKinds:
    size: int | str = 8  # the checker cannot tell which one a recipe's value means


@attrs.frozen
class SetField:
    classes: set[int] = attrs.field(factory=set)  # no YAML value structures into it, no run hash holds it


@attrs.frozen
class BytesField:
    key: bytes = b"x"


@attrs.frozen
class NestedSet:
    inner: SetField = attrs.field(factory=SetField)


@attrs.frozen
class EveryKindARecipeHolds:
    depth: int = 2
    dropout: float = 0
    mode: typing.Literal["a", "b"] = "a"
    scales: tuple[float, ...] = (1.0,)
    crop: tuple[int, int] | None = None
    groups: dict[str, Fine] = attrs.field(factory=dict)
    names: list[str] = attrs.field(factory=list)
    anything: typing.Any = None
    root: pathlib.Path = pathlib.Path("data")
    sizes: typing.Sequence[int] = (1,)
    weight: typing.Annotated[float, "a documented weight"] = 1.0


@attrs.frozen
class OptionA:
    depth: int = 1


@attrs.frozen
class OptionB:
    width: int = 2


@attrs.frozen
class UnionOfLookalikes:
    option: OptionA | OptionB = attrs.field(factory=OptionA)  # every field has a default: {} could be either


def _registering(**registration):
    class Plugin:
        @hookimpl
        def segbench_register_models(self, register):
            register("mine", **registration)

    return Plugin()


@pytest.mark.parametrize(("registration", "expected"), [
    (dict(factory=lambda config, *, num_classes: None, config=ZeroChannels),
     "config class ZeroChannels, whose defaults are invalid: ZeroChannels() raises ValueError: 'channels' must be"
     " > 0: 0"),
    (dict(factory=lambda config, *, num_classes: None, config=RequiredAndBadDefault),
     "whose defaults are invalid: field 'depth' defaults to -1"),
    (dict(factory=lambda config, *, num_classes: None, config=TextForNumber),
     "whose defaults are invalid: field 'channels': expected an integer, got the string '8'"),
    (dict(factory=42, config=Fine), "with factory 42, which is not callable"),
    (dict(factory=lambda config, *, num_classes: None, config=UnionOfKinds),
     "config class UnionOfKinds: field 'size' has type int | str, which a recipe cannot hold; use bool, int,"),
    (dict(factory=lambda config, *, num_classes: None, config=SetField),
     "field 'classes' has type set[int], which a recipe cannot hold"),
    (dict(factory=lambda config, *, num_classes: None, config=BytesField),
     "field 'key' has type bytes, which a recipe cannot hold"),
    (dict(factory=lambda config, *, num_classes: None, config=NestedSet),
     "field 'inner' has type set[int], which a recipe cannot hold"),
    (dict(factory=lambda config, *, num_classes: None, config=UnionOfLookalikes),
     "field 'option' has type tests.test_plugin_misbehaviour.OptionA | tests.test_plugin_misbehaviour.OptionB"),
    (dict(factory=lambda config, *, num_classes: None, config=WithNameField),
     "which has a field called 'name'; in a recipe `name:` chooses the component"),
])
def test_a_registration_that_cannot_work_is_refused_naming_the_plugin(registration, expected):
    with pytest.raises(PluginError) as info:
        registries_with(_registering(**registration))
    message = str(info.value)
    assert message.startswith("plugin 'thirdparty-plugin' registered models 'mine'") and expected in message


@pytest.mark.parametrize(("for_checkpoint", "expected"), [
    (lambda config: None, "returned None; it must return a Fine"),
    (lambda config: config.channels, "failed: AttributeError:"),
])
def test_a_for_checkpoint_function_that_gives_no_config_is_named(for_checkpoint, expected):
    """Evaluating, exporting or timing a finished run builds the model through it: the message must blame it,
    not the recipe's model settings."""
    registries = registries_with(_registering(factory=lambda config, *, num_classes: None, config=Fine,
                                              for_checkpoint=for_checkpoint))
    with pytest.raises(PluginError) as info:
        registries.models.get("mine").checkpoint_config(Fine())
    message = str(info.value)
    assert message.startswith("the for_checkpoint function of model 'mine' (plugin 'thirdparty-plugin')")
    assert expected in message


def test_an_alias_taking_a_built_in_name_says_it_is_an_alias():
    with pytest.raises(PluginError) as info:
        registries_with(_registering(factory=lambda config, *, num_classes: None, config=Fine, aliases=("unet",)))
    message = str(info.value)
    assert message.startswith("models name 'unet' is registered twice: by plugin 'segbench_plugins.unet'")
    assert "and by plugin 'thirdparty-plugin'" in message and "(as an alias of 'mine')." in message


def test_a_config_class_of_every_type_a_recipe_can_hold_registers_and_structures():
    registries = registries_with(_registering(factory=lambda config, *, num_classes: None,
                                              config=EveryKindARecipeHolds))
    entry = registries.models.get("mine")
    config = structure_config(entry.config, {"scales": [0.5, 1], "crop": [4, 8], "groups": {"head": {}},
                                             "root": "elsewhere", "sizes": [2, 3]}, path="model")
    assert config.scales == (0.5, 1.0) and config.crop == (4, 8) and config.groups == {"head": Fine()}
    assert config.root == pathlib.Path("elsewhere") and tuple(config.sizes) == (2, 3) and config.dropout == 0.0


@pytest.mark.parametrize("name", ["", "nets/v2", "two words", "-dash", ".hidden", 3])
def test_a_name_that_recipes_or_file_names_cannot_carry_is_refused(name):
    class Plugin:
        @hookimpl
        def segbench_register_models(self, register):
            register(name, lambda config, *, num_classes: None, config=Fine)

    with pytest.raises(PluginError, match=r"plugin 'thirdparty-plugin' registered a model named .*letters, digits"):
        registries_with(Plugin())


def test_built_ins_register_first_so_a_plugin_does_not_change_a_recipes_defaults():
    class Plugin:  # a final transform and a default scheduler of its own, registered after the built-ins'
        @hookimpl
        def segbench_register_transforms(self, register):
            register("to_float", lambda config: None, config=Fine, final=True)

        @hookimpl
        def segbench_register_schedulers(self, register):
            register("mine", lambda config, **context: None, config=Fine, default=True)

    registries = registries_with(Plugin())
    builtin = registries_with()
    assert default_specs(registries.transforms, path="t") == default_specs(builtin.transforms, path="t")
    assert [e.name for e in registries.schedulers.defaults()][0] == builtin.schedulers.defaults()[0].name
    assert registries.models.in_order()[-1].plugin == "engine-test-plugin"  # registered last, listed last


# ---- distributed runs ---------------------------------------------------------------------------

def test_a_process_whose_peer_stopped_says_so_in_one_line(cli, monkeypatch):
    """A bad item in one rank's shard stops that rank with its clear error; the other rank's collective then
    fails with a backend traceback, which must not bury that error."""
    def peer_gone(args):
        raise RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:54440. This is"
                           " typically caused by a remote worker crashing.")

    monkeypatch.setattr("segbench.commands.cmd_run", peer_gone)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, _, err = cli("run", "any.yaml")
    assert status == 1 and "Traceback" not in err
    assert err.strip() == ("segbench: error: process 1 of 2 stopped because another process of this distributed"
                           " run exited (its own error, printed by that process, says why; fix that and run the"
                           " same command again)")

    monkeypatch.setenv("WORLD_SIZE", "1")  # alone, the same error is a real failure: not hidden
    with pytest.raises(RuntimeError, match="Connection closed by peer"):
        cli("run", "any.yaml")


# ---- factories returning the wrong object --------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "expected"), [
    ("{name: sgd, lr: 0.1, momentum: 0.0, weight_decay: 0.0}", "{name: forgot_return}",
     "optimizer: optimizer 'forgot_return' (plugin 'thirdparty-misbehaving'): its factory returned"
     " builtins.NoneType, not a torch.optim.Optimizer"),
    ("{name: constant}", "{name: not_a_scheduler}",
     "scheduler: scheduler 'not_a_scheduler' (plugin 'thirdparty-misbehaving'): its factory returned"
     " builtins.object, not an object with step_iteration(), step_epoch(metric), state_dict() and"
     " load_state_dict(state)"),
    ("dataset: {name: blobs, count: 12, size: 16}", "dataset: {name: a_list}",
     "data.train: dataset 'a_list' (plugin 'thirdparty-misbehaving'): its factory returned builtins.list, not a"
     " segbench.data.SegmentationDataset"),
])
def test_a_factory_returning_the_wrong_object_is_named_before_training(tmp_path, old, new, expected):
    with pytest.raises(PluginError) as info:
        run(tmp_path, (old, new))
    assert str(info.value).startswith(expected)
    assert_nothing_saved(tmp_path)


@pytest.mark.parametrize(("weighting", "expected"), [
    ("nan_weights", "returned weights that are not finite and positive (nan, nan, nan)"),
    ("one_weight_too_many", "returned a torch.float32 tensor of shape (4,)"),
    ("list_weights", "returned a builtins.list"),
])
def test_class_weights_that_are_not_one_positive_weight_per_class_are_refused(tmp_path, weighting, expected):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("loss: {name: cross_entropy}", f"loss: {{name: cross_entropy}}\nclass_weighting: {{name:"
                                                      f" {weighting}}}"))
    message = str(info.value)
    assert message.startswith(f"class_weighting: class weighting {weighting!r} ({PLUGIN})")
    assert "must return a float tensor of 3 finite, positive weights (one per class)" in message
    assert expected in message
    assert_nothing_saved(tmp_path)


# ---- plugin code raising while a run trains ------------------------------------------------------

def test_an_exception_inside_plugin_code_during_training_is_one_line_naming_the_plugin(tmp_path, cli, monkeypatch):
    registries = registries_with(misbehaving_plugin.Misbehaving())
    monkeypatch.setattr("segbench.registry.build_registries", lambda plugin_manager: registries)
    text = engine_plugin.RECIPE.replace("epochs: 3", "epochs: 1").replace("{name: cross_entropy}",
                                                                            "{name: raising_loss}")
    status, _, err = cli("run", write_recipe(tmp_path, text), "--runs-dir", tmp_path / "runs")
    assert status == 2 and "Traceback" not in err
    message = err.strip().splitlines()[-1].split("segbench: error: ")[-1]
    assert message == ("loss: loss 'raising_loss' (plugin 'thirdparty-misbehaving') failed computing the loss:"
                       " IndexError: index 99 is out of bounds for dimension 2 with size 16. Fix the plugin, or"
                       " report this to its authors (--debug shows where).")
    assert_nothing_saved(tmp_path)


def test_models_shows_a_factory_returning_no_module_as_an_error_row(cli, monkeypatch):
    monkeypatch.setattr("segbench.commands._registries",
                        lambda: registries_with(misbehaving_plugin.Misbehaving(), block="unet,deeplab,lraspp,enet"))
    status, out, err = cli("models", "--size", "32x64")
    assert status == 0, err
    row = next(line for line in out.splitlines() if line.startswith("| returns_none |"))
    assert ("error: model 'returns_none' (plugin 'thirdparty-misbehaving'): its factory returned builtins.NoneType,"
            " not a torch.nn.Module") in row


def test_models_shows_a_model_whose_recipe_must_set_a_key_as_such_not_as_broken(cli, monkeypatch):
    @attrs.frozen
    class NeedsDepth:
        depth: int  # no default: every recipe must choose it
        width: int = 8

    monkeypatch.setattr("segbench.commands._registries", lambda: registries_with(
        _registering(factory=lambda config, *, num_classes: None, config=NeedsDepth),
        block="unet,deeplab,lraspp,enet"))
    status, out, err = cli("models", "--size", "32x64")
    assert status == 0 and "could not be built" not in err
    row = next(line for line in out.splitlines() if line.startswith("| mine |"))
    assert "sized once a recipe sets model.depth (no default)" in row and "error" not in row


def test_a_loss_that_is_nan_from_the_start_blames_the_inputs_first_and_names_the_loss(tmp_path):
    from segbench.errors import TrainingDivergedError

    with pytest.raises(TrainingDivergedError) as info:  # NaN at step 1, first seen at the first log (step 4)
        run(tmp_path, ("{name: cross_entropy}", "{name: nan_after, step: 1}"), ("log_every: 1", "log_every: 4"))
    message = str(info.value)
    assert "not a finite number (nan) in iterations 1-4, checked every trainer.log_every = 4" in message
    assert "(1) the data:" in message and "(2) the learning rate" in message
    assert "(4) the loss 'nan_after' (plugin 'engine-test-plugin') itself" in message


# ---- a scheduler's state and learning rates -------------------------------------------------------

@pytest.mark.parametrize("keeps, expected", [
    ("numpy", "state['history'][1]['best'] (a numpy.float64 is not read back)"),
    ("lambda", "state['history'][1]['best'] (it cannot be saved: AttributeError"),
])
def test_a_scheduler_state_a_checkpoint_cannot_keep_is_named_before_the_checkpoint_is_written(tmp_path, keeps,
                                                                                             expected):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("{name: constant}", f"{{name: odd, keeps: {keeps}}}"))
    message = str(info.value)
    assert message.startswith(f"scheduler: scheduler 'odd' ({PLUGIN}) returned from state_dict() a state that a"
                              " checkpoint cannot keep:")
    assert expected in message and "torch.load(weights_only=True)" in message
    assert_nothing_saved(tmp_path)


def test_a_scheduler_state_of_plain_values_is_checkpointed_as_it_was(tmp_path):
    from segbench.engine.checkpoint import load_checkpoint

    run_dir = run(tmp_path, ("{name: constant}", "{name: odd, keeps: plain}"))
    assert load_checkpoint(run_dir.last)["scheduler"] == {"history": [1.0, {"best": 0.5}]}


@pytest.mark.parametrize("lr", ["'-1'", "nan", "inf"])
def test_a_scheduler_setting_an_impossible_learning_rate_is_named(tmp_path, lr):
    with pytest.raises(PluginError) as info:
        run(tmp_path, ("{name: constant}", f"{{name: odd, keeps: plain, lr: {lr}}}"))
    assert str(info.value).startswith(f"scheduler: scheduler 'odd' ({PLUGIN}) set a learning rate that is not a"
                                      " finite number >= 0 in step_iteration() (group 0: ")
    assert_nothing_saved(tmp_path)
