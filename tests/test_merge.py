"""Recipe merge rules as properties of the pure merge function."""
from hypothesis import given, strategies as st

from segbench.functional.merge import content_hash, deep_merge, set_path

keys = st.sampled_from(["a", "b", "c", "lr", "size"])
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=3)
trees = st.recursive(scalars | st.lists(scalars, max_size=3),
                     lambda children: st.dictionaries(keys, children, max_size=4), max_leaves=12)
mappings = st.dictionaries(keys, trees, max_size=4)


@given(mappings)
def test_merging_empty_is_identity(tree):
    assert deep_merge(tree, {}) == tree
    assert deep_merge({}, tree) == tree


@given(mappings)
def test_merge_is_idempotent_for_identical_inputs(tree):
    assert deep_merge(tree, tree) == tree


@given(mappings, mappings)
def test_overrides_win_and_untouched_keys_survive(base, child):
    merged = deep_merge(base, child)
    for key, value in child.items():
        if not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == value
    for key, value in base.items():
        if key not in child:
            assert merged[key] == value


def test_lists_and_scalars_replace_and_null_is_a_value():
    base = {"sizes": [1, 2, 3], "lr": 0.1, "clip": 5.0}
    assert deep_merge(base, {"sizes": [4], "clip": None}) == {"sizes": [4], "lr": 0.1, "clip": None}


def test_a_different_name_replaces_the_mapping():
    base = {"optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99]}}
    merged = deep_merge(base, {"optimizer": {"name": "sgd", "lr": 0.01}})
    assert merged == {"optimizer": {"name": "sgd", "lr": 0.01}}


def test_same_name_merges_and_replace_marker_replaces():
    base = {"optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99]}}
    assert deep_merge(base, {"optimizer": {"name": "adam", "lr": 1e-4}})["optimizer"]["betas"] == [0.9, 0.99]
    replaced = deep_merge(base, {"optimizer": {"_replace_": True, "name": "adam"}})
    assert replaced == {"optimizer": {"name": "adam"}}


@given(mappings)
def test_hash_ignores_key_order(tree):
    reordered = dict(reversed(list(tree.items())))
    assert content_hash(tree) == content_hash(reordered)


def test_hash_changes_with_content_and_can_exclude_sections():
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert content_hash({"a": 1, "slurm": {"time": "1:00"}}, exclude=("slurm",)) == content_hash({"a": 1})


def test_set_path_merges_and_requires_existing_parents():
    tree = {"trainer": {"epochs": 5, "batch_size": 2}}
    assert set_path(tree, "trainer.epochs", 2) == {"trainer": {"epochs": 2, "batch_size": 2}}
    assert set_path(tree, "trainer.accumulate", 4)["trainer"]["accumulate"] == 4
    import pytest
    from segbench.functional.merge import OverridePathError

    with pytest.raises(OverridePathError, match="'trainr' is not a section"):
        set_path(tree, "trainr.epochs", 2)
    with pytest.raises(OverridePathError, match="is a value, not a section"):
        set_path(tree, "trainer.epochs.x", 2)


def test_a_replace_marker_as_a_dotted_override_says_where_it_goes():
    import pytest
    from segbench.functional.merge import OverridePathError

    with pytest.raises(OverridePathError, match=r"trainer=\{_replace_: true, \.\.\.\}"):
        set_path({"trainer": {"epochs": 5}}, "trainer._replace_", True)


def test_set_path_fills_a_section_the_recipe_left_null():
    tree = {"class_weighting": None, "trainer": {"epochs": 5}}
    assert set_path(tree, "class_weighting.name", "enet") == {"class_weighting": {"name": "enet"},
                                                              "trainer": {"epochs": 5}}
    assert tree["class_weighting"] is None  # the input is left alone


def test_a_replace_marker_must_be_true_or_false_and_is_named_by_its_path():
    import pytest

    from segbench.functional.merge import MergeMarkerError

    base = {"optimizer": {"name": "adam", "lr": 1e-3}}
    with pytest.raises(MergeMarkerError, match=r"optimizer\._replace_ is 'yes'"):
        deep_merge(base, {"optimizer": {"_replace_": "yes", "lr": 1e-4}})
    with pytest.raises(MergeMarkerError, match=r"optimizer\._replace_ is 1"):
        set_path(base, "optimizer", {"_replace_": 1})
    assert deep_merge(base, {"optimizer": {"_replace_": False, "lr": 1e-4}}) == {"optimizer": {"name": "adam",
                                                                                            "lr": 1e-4}}


def test_an_override_into_a_list_says_to_give_the_whole_list():
    import pytest

    from segbench.functional.merge import OverridePathError

    with pytest.raises(OverridePathError, match=r"'data.steps' is a list.*give the whole list, e.g. data.steps=\[\.\.\.\]"):
        set_path({"data": {"steps": [{"name": "hflip"}]}}, "data.steps.0.p", 1)
    with pytest.raises(OverridePathError, match="'seed' is a value, not a section"):
        set_path({"seed": 0}, "seed.x", 1)
