"""The Cityscapes reader: layout, labelId -> trainId mapping, splits, subsets, and every data error."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.config import structure_config
from segbench.data import (
    DatasetInfo,
    SegmentationDataset,
    cityscapes_info,
    cityscapes_label_to_train_lut,
    read_label_png,
    read_png,
    read_rgb_png,
)
from segbench.errors import ConfigError, DataError
from segbench_plugins import cityscapes as plugin
from segbench_plugins.cityscapes import CityscapesConfig, CityscapesDataset, Subset

# The table in notes/cityscapes.md, typed here on purpose: the code takes it from torchvision,
# this test checks the two agree.
NOTES_TABLE = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
               26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
NOTES_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
               "bicycle")

SIZE = (16, 32)  # (H, W)
DEFAULT_LAYOUT = {"train": {"aachen": 3, "bochum": 2}, "val": {"frankfurt": 2, "lindau": 1}}


def _write_pair(root: Path, split: str, city: str, index: int, *, annotations, size, rng):
    stem = f"{city}_{index:06d}_{19 + index:06d}"
    image_dir = root / "leftImg8bit" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image_dir / f"{stem}_leftImg8bit.png")
    for annotation in annotations:
        folder = plugin.LABEL_FOLDERS[annotation]
        label_dir = root / folder / split / city
        label_dir.mkdir(parents=True, exist_ok=True)
        label_ids = rng.integers(0, 34, size, dtype=np.uint8)
        Image.fromarray(label_ids).save(label_dir / f"{stem}_{folder}_labelIds.png")
        # the distribution's other label files sit next to it and must be ignored
        Image.fromarray(rng.integers(0, 256, (*size, 4), dtype=np.uint8)).save(
            label_dir / f"{stem}_{folder}_color.png")


@pytest.fixture
def make_tree(tmp_path):
    """``make_tree(layout, annotations=("fine",))`` writes a tiny Cityscapes tree and returns its root.

    ``layout`` is ``{split: {city: number of images}}``.
    """
    counter = iter(range(1000))

    def make(layout=None, *, annotations=("fine",), size=SIZE, seed=0):
        root = tmp_path / f"cityscapes{next(counter)}"
        rng = np.random.default_rng(seed)
        for split, cities in (layout or DEFAULT_LAYOUT).items():
            for city, count in cities.items():
                for index in range(count):
                    usable = tuple(a for a in annotations if split in plugin.SPLITS_WITH_LABELS[a])
                    _write_pair(root, split, city, index, annotations=usable, size=size, rng=rng)
        return root

    return make


def _label_file(root, split="train", city="aachen", index=0, folder="gtFine"):
    return root / folder / split / city / f"{city}_{index:06d}_{19 + index:06d}_{folder}_labelIds.png"


def _image_file(root, split="train", city="aachen", index=0):
    return root / "leftImg8bit" / split / city / f"{city}_{index:06d}_{19 + index:06d}_leftImg8bit.png"


# ---- the class table ----------------------------------------------------------------------------

def test_label_lut_matches_the_notes_for_every_label_id():
    lut = cityscapes_label_to_train_lut()
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    for label_id in range(34):
        assert lut[label_id] == NOTES_TABLE.get(label_id, 255), label_id
    assert lut[29] == 255 and lut[30] == 255  # caravan, trailer: void


def test_cityscapes_info_is_the_19_train_classes():
    info = cityscapes_info()
    assert info.class_names == NOTES_NAMES
    assert info.ignore_index == 255 and info.num_classes == 19
    assert info.train_to_label_id == tuple(sorted(NOTES_TABLE, key=NOTES_TABLE.get))
    assert info.palette[0] == (128, 64, 128) and info.palette[18] == (119, 11, 32)


def test_dataset_info_rejects_inconsistent_tables():
    with pytest.raises(ValueError, match="palette"):
        DatasetInfo(class_names=("a", "b"), palette=((0, 0, 0),))
    with pytest.raises(ValueError, match="ignore_index"):
        DatasetInfo(class_names=("a", "b"), palette=((0, 0, 0), (1, 1, 1)), ignore_index=1)


def test_reading_a_label_maps_all_34_label_ids(make_tree):
    root = make_tree({"train": {"aachen": 1}}, size=(2, 17))
    label_ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    Image.fromarray(label_ids).save(_label_file(root))
    mask = CityscapesDataset(root).read_mask(0)
    expected = np.vectorize(lambda i: NOTES_TABLE.get(int(i), 255))(label_ids)
    assert mask.dtype == torch.uint8 and np.array_equal(mask.numpy(), expected)


# ---- reading ------------------------------------------------------------------------------------

def test_items_are_sorted_pairs_with_ids_and_paths(make_tree):
    root = make_tree()
    data = CityscapesDataset(root, split="train")
    assert isinstance(data, SegmentationDataset) and len(data) == 5
    assert [data.sample_id(i) for i in range(len(data))] == [
        "aachen_000000_000019", "aachen_000001_000020", "aachen_000002_000021",
        "bochum_000000_000019", "bochum_000001_000020"]
    assert data.image_path(3) == _image_file(root, city="bochum")
    assert data.label_path(3) == _label_file(root, city="bochum")
    image, mask = data[4]
    assert image.dtype == torch.uint8 and image.shape == (3, *SIZE)
    assert mask.dtype == torch.uint8 and mask.shape == SIZE
    pil_image = np.asarray(Image.open(data.image_path(4)))
    assert np.array_equal(image.permute(1, 2, 0).numpy(), pil_image)
    pil_label = np.asarray(Image.open(data.label_path(4)))
    assert np.array_equal(mask.numpy(), cityscapes_label_to_train_lut()[pil_label])
    assert torch.equal(data.read_mask(4), mask)
    with pytest.raises(IndexError):
        data[5]


def test_test_split_is_readable(make_tree):
    root = make_tree({"test": {"berlin": 2}})
    assert len(CityscapesDataset(root, split="test")) == 2


def test_train_plus_train_extra_with_coarse_labels(make_tree):
    root = make_tree({"train": {"aachen": 2}, "train_extra": {"augsburg": 3}}, annotations=("fine", "coarse"))
    data = CityscapesDataset(root, split="train+train_extra", annotation="coarse")
    assert len(data) == 5
    assert {data.label_path(i).parts[-4] for i in range(5)} == {"gtCoarse"}
    assert data.sample_id(0).startswith("aachen") and data.sample_id(4).startswith("augsburg")
    assert data[4][1].shape == SIZE


def test_fine_annotation_for_train_extra_says_use_coarse():
    with pytest.raises(ValueError, match="annotation: coarse"):
        CityscapesConfig(split="train+train_extra")
    with pytest.raises(ConfigError, match="annotation: coarse"):
        structure_config(CityscapesConfig, {"split": "train_extra"}, path="data.train")
    with pytest.raises(DataError, match="annotation: coarse"):
        CityscapesDataset("anywhere", split="train_extra")
    with pytest.raises(ValueError, match="gtCoarse has no test split"):
        CityscapesConfig(split="test", annotation="coarse")


def test_unknown_split_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        structure_config(CityscapesConfig, {"split": "training"}, path="data.train")
    assert "data.train.split" in str(info.value) and "train_extra" in str(info.value)


def test_plugin_builds_from_a_recipe_section(make_tree, registries):
    root = make_tree()
    entry = registries.datasets.get("cityscapes")
    config = structure_config(entry.config, {"root": str(root), "split": "val",
                                             "subset": {"cities": ["frankfurt"]}}, path="data.report")
    assert config.subset == Subset(cities=("frankfurt",))
    data = entry.factory(config)
    assert len(data) == 2 and data.info == cityscapes_info()


# ---- subsets ------------------------------------------------------------------------------------

@pytest.fixture
def big_split(make_tree):
    return make_tree({"train": {"aachen": 12, "bochum": 8, "cologne": 5}}, size=(2, 2))


def _ids(data):
    return [data.sample_id(i) for i in range(len(data))]


def test_subset_first(big_split):
    full = _ids(CityscapesDataset(big_split))
    assert _ids(CityscapesDataset(big_split, subset=Subset(first=4))) == full[:4]
    assert _ids(CityscapesDataset(big_split, subset=Subset(first=4, invert=True))) == full[4:]


def test_subset_random_is_seeded_and_invert_is_the_complement(big_split):
    full = _ids(CityscapesDataset(big_split))
    chosen = _ids(CityscapesDataset(big_split, subset=Subset(random=7, seed=3)))
    assert chosen == _ids(CityscapesDataset(big_split, subset=Subset(random=7, seed=3)))
    assert len(chosen) == 7 and chosen == sorted(chosen)
    rest = _ids(CityscapesDataset(big_split, subset=Subset(random=7, seed=3, invert=True)))
    assert not set(chosen) & set(rest) and sorted(chosen + rest) == full
    others = {tuple(_ids(CityscapesDataset(big_split, subset=Subset(random=7, seed=s)))) for s in range(4)}
    assert len(others) > 1  # the seed matters


def test_subset_cities(big_split):
    data = CityscapesDataset(big_split, subset=Subset(cities=("bochum", "cologne")))
    assert len(data) == 13 and {i.split("_")[0] for i in _ids(data)} == {"bochum", "cologne"}
    assert len(CityscapesDataset(big_split, subset=Subset(cities=("bochum",), invert=True))) == 17


def test_subset_needs_exactly_one_choice():
    for bad in ({}, {"first": 2, "random": 3}, {"random": 2, "cities": ["aachen"]}):
        with pytest.raises(ConfigError, match="exactly one of first, random, cities"):
            structure_config(CityscapesConfig, {"subset": bad}, path="data.train")
    with pytest.raises(ConfigError, match="subset.first"):
        structure_config(CityscapesConfig, {"subset": {"first": 0}}, path="data.train")


def test_subset_errors_name_the_split(big_split):
    with pytest.raises(DataError, match="subset.random is 30 but .* has only 25 images"):
        CityscapesDataset(big_split, subset=Subset(random=30))
    with pytest.raises(DataError, match="subset.cities names zurich.*aachen, bochum, cologne"):
        CityscapesDataset(big_split, subset=Subset(cities=("zurich",)))
    with pytest.raises(DataError, match="keeps no images"):
        CityscapesDataset(big_split, subset=Subset(first=25, invert=True))


# ---- structural errors (at construction) --------------------------------------------------------

def test_missing_root_says_how_to_get_cityscapes(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        CityscapesDataset(root)
    message = str(info.value)
    assert str(root) in message and "cityscapes-dataset.com" in message and "synthetic_city" in message


def test_missing_split_folder_lists_what_exists(make_tree):
    root = make_tree({"train": {"aachen": 1}})
    with pytest.raises(DataError) as info:
        CityscapesDataset(root, split="val")
    assert str(root / "leftImg8bit" / "val") in str(info.value) and "train" in str(info.value)


def test_missing_label_folder_names_the_archive(make_tree):
    root = make_tree({"train": {"aachen": 1}})
    with pytest.raises(DataError) as info:
        CityscapesDataset(root, annotation="coarse")
    assert "gtCoarse" in str(info.value) and "gtCoarse.zip" in str(info.value)


def test_image_without_label_is_listed(make_tree):
    root = make_tree()
    _label_file(root, city="bochum", index=1).unlink()
    with pytest.raises(DataError) as info:
        CityscapesDataset(root)
    assert "1 image(s)" in str(info.value) and str(_image_file(root, city="bochum", index=1)) in str(info.value)
    assert str(_label_file(root, city="bochum", index=1)) in str(info.value)  # the expected name


def test_many_unpaired_files_list_the_first_few(make_tree):
    root = make_tree({"train": {"aachen": 8}})
    for index in range(8):
        _label_file(root, index=index).unlink()
    with pytest.raises(DataError) as info:
        CityscapesDataset(root)
    assert "8 image(s)" in str(info.value) and "and 3 more" in str(info.value)
    assert "holds no *_gtFine_labelIds.png files" in str(info.value)


def test_label_without_image_is_listed(make_tree):
    root = make_tree()
    _image_file(root, city="aachen", index=2).unlink()
    with pytest.raises(DataError) as info:
        CityscapesDataset(root)
    assert "have no image" in str(info.value) and str(_label_file(root, index=2)) in str(info.value)


def test_empty_split(make_tree):
    root = make_tree({"train": {"aachen": 1}})
    (root / "leftImg8bit" / "val").mkdir()
    (root / "gtFine" / "val").mkdir()
    with pytest.raises(DataError, match="has no images"):
        CityscapesDataset(root, split="val")


# ---- content errors (when an item is read) ------------------------------------------------------

def test_size_mismatch_names_both_files_and_sizes(make_tree):
    root = make_tree({"train": {"aachen": 2}})
    Image.fromarray(np.zeros((8, 32), np.uint8)).save(_label_file(root, index=1))
    data = CityscapesDataset(root)
    with pytest.raises(DataError) as info:
        data[1]
    message = str(info.value)
    assert str(_image_file(root, index=1)) in message and str(_label_file(root, index=1)) in message
    assert "32x16" in message and "32x8" in message
    data[0]  # the other pair is fine
    assert CityscapesDataset(root, check_sizes=False)[1][1].shape == (8, 32)


def test_value_that_is_not_a_label_id(make_tree):
    root = make_tree({"train": {"aachen": 1}})
    label = np.full(SIZE, 7, np.uint8)
    label[0, :3] = 255
    label[1, 0] = 34
    Image.fromarray(label).save(_label_file(root))
    with pytest.raises(DataError) as info:
        CityscapesDataset(root).read_mask(0)
    assert str(_label_file(root)) in str(info.value) and "34, 255" in str(info.value)
    assert "labelIds" in str(info.value)


def test_rgb_label_is_probably_a_color_png(make_tree):
    root = make_tree({"train": {"aachen": 1}})
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(_label_file(root))
    with pytest.raises(DataError) as info:
        CityscapesDataset(root)[0]
    assert str(_label_file(root)) in str(info.value) and "_color.png" in str(info.value)
    assert "labelIds.png" in str(info.value)


def test_16_bit_label_is_probably_an_instance_map(make_tree):
    root = make_tree({"train": {"aachen": 1}})
    Image.fromarray(np.full(SIZE, 26001, np.uint16)).save(_label_file(root))
    with pytest.raises(DataError, match="instanceIds"):
        CityscapesDataset(root).read_mask(0)


def test_truncated_png_says_re_extract(make_tree):
    root = make_tree({"train": {"aachen": 2}})
    image = _image_file(root, index=1)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    dataset = CityscapesDataset(root)
    with pytest.raises(DataError) as info:
        dataset[1]
    assert str(image) in str(info.value) and "re-extract" in str(info.value)
    image.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        dataset[1]


def test_permission_denied_names_the_file(make_tree, monkeypatch):
    from segbench.data import png

    root = make_tree({"train": {"aachen": 1}})
    image = _image_file(root)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    def fail(path):
        raise RuntimeError("read_file failed")

    if os.geteuid() == 0:  # root reads anything: make the read fail the way it fails for a user
        monkeypatch.setattr(png.torchvision_io(), "read_file", fail)
        monkeypatch.setattr(png, "open", refuse, raising=False)
    else:
        image.chmod(0)
    with pytest.raises(DataError) as info:
        CityscapesDataset(root)[0]
    assert str(image) in str(info.value) and "permission denied" in str(info.value)


def test_worker_errors_name_the_file(make_tree):
    root = make_tree({"train": {"aachen": 2}})
    _label_file(root, index=1).write_bytes(b"not a png at all")
    batches = iter(torch.utils.data.DataLoader(CityscapesDataset(root), batch_size=1, num_workers=1))
    next(batches)
    with pytest.raises(DataError) as info:
        next(batches)
    assert str(_label_file(root, index=1)) in str(info.value)
    assert next(batches, None) is None  # run out, so the worker exits at once (not after a 5 s timeout)


# ---- png reading --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_png_reader_is_bit_identical_to_pil(tmp_path, mode):
    rng = np.random.default_rng(1)
    path = tmp_path / f"{mode}.png"
    channels = 4 if mode == "RGBA" else 3
    Image.fromarray(rng.integers(0, 256, (37, 53, channels), dtype=np.uint8)).convert(mode).save(path)
    pil = Image.open(path)
    assert np.array_equal(read_rgb_png(path).permute(1, 2, 0).numpy(), np.asarray(pil.convert("RGB")))
    raw = read_png(path)
    assert np.array_equal(raw.permute(1, 2, 0).numpy().squeeze(-1) if raw.shape[0] == 1
                          else raw.permute(1, 2, 0).numpy(), np.asarray(pil))
    if mode in ("L", "P"):
        assert np.array_equal(read_label_png(path).numpy(), np.asarray(pil))


def test_missing_png_names_the_file(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "gone.png")):
        read_png(tmp_path / "gone.png")


# ---- fingerprint --------------------------------------------------------------------------------

def test_fingerprint_follows_the_labels(make_tree):
    root = make_tree()
    key = CityscapesDataset(root).fingerprint()
    assert key == CityscapesDataset(root).fingerprint()
    assert key != CityscapesDataset(root, subset=Subset(first=2)).fingerprint()
    assert key != CityscapesDataset(root, split="val").fingerprint()
    Image.fromarray(np.full(SIZE, 7, np.uint8)).save(_label_file(root))
    assert key != CityscapesDataset(root).fingerprint()


# ---- synthetic_city -----------------------------------------------------------------------------

TINY = {"train": 3, "val": 2, "train_extra": 2, "size": [32, 64]}


def _synthetic(registries, tmp_path, **section):
    from segbench_plugins.synthetic_city import build_synthetic_city

    entry = registries.datasets.get("synthetic_city")
    config = structure_config(entry.config, {**TINY, "cache_dir": str(tmp_path), **section}, path="data.train")
    return build_synthetic_city(config, progress=False)


def test_synthetic_city_is_generated_once_and_read_as_cityscapes(registries, tmp_path, monkeypatch):
    from segbench_plugins import synthetic_city

    data = _synthetic(registries, tmp_path)
    assert isinstance(data, CityscapesDataset) and len(data) == 3 and data.info == cityscapes_info()
    assert data.root.parent == tmp_path / "synthetic_city"
    image, mask = data[0]
    assert image.shape == (3, 32, 64) and mask.shape == (32, 64)
    assert set(mask.unique().tolist()) <= set(range(19)) | {255}
    monkeypatch.setattr(synthetic_city, "generate_city", lambda *a, **k: pytest.fail("generated twice"))
    coarse = _synthetic(registries, tmp_path, split="train+train_extra", annotation="coarse")
    assert len(coarse) == 5 and coarse.root == data.root
    assert len(_synthetic(registries, tmp_path, split="val")) == 2


def test_synthetic_city_defaults_are_the_generators():
    import inspect

    from segbench.synth import generate_city
    from segbench_plugins.synthetic_city import SyntheticCityConfig

    defaults = inspect.signature(generate_city).parameters
    config = SyntheticCityConfig()
    for name in ("train", "val", "train_extra", "seed"):
        assert getattr(config, name) == defaults[name].default
    assert tuple(config.size) == tuple(defaults["size"].default)


def test_concurrent_builds_generate_once_and_never_see_a_partial_tree(tmp_path, monkeypatch):
    import threading

    from segbench_plugins import synthetic_city

    calls = []
    real = synthetic_city.generate_city

    def counting(root, **params):
        calls.append(root)
        return real(root, **{**params, "workers": 1})  # no fork from a multi-threaded test

    monkeypatch.setattr(synthetic_city, "generate_city", counting)
    config = synthetic_city.SyntheticCityConfig(train=2, val=1, train_extra=0, size=(32, 64),
                                                cache_dir=str(tmp_path))
    root = synthetic_city.tree_root(config)
    root.mkdir(parents=True)
    (root / "leftImg8bit").mkdir()  # an interrupted earlier generation: no .complete marker
    sizes = []

    def build():
        sizes.append(len(synthetic_city.build_synthetic_city(config, progress=False)))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sizes == [2, 2, 2] and len(calls) == 1 and calls[0] != root
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name, f"{root.name}.lock"]


def test_synthetic_city_config_errors():
    from segbench_plugins.synthetic_city import SyntheticCityConfig

    for section, message in (({"split": "test"}, "no test split"),
                             ({"split": "val", "val": 0}, "`val: 0`"),
                             ({"split": "train_extra"}, "annotation: coarse"),
                             ({"size": [0, 64]}, "data.train.size")):
        with pytest.raises(ConfigError, match=message):
            structure_config(SyntheticCityConfig, section, path="data.train")


def test_a_killed_generation_leaves_no_partial_tree_behind_once_generation_succeeds(tmp_path):
    """A generation killed mid-way (kill -9: no clean-up runs) leaves `<key>.partial-*`; the next one removes it."""
    from segbench_plugins import synthetic_city

    config = synthetic_city.SyntheticCityConfig(train=2, val=1, train_extra=0, size=(32, 64), cache_dir=str(tmp_path))
    root = synthetic_city.tree_root(config)
    stale = root.parent / f"{root.name}.partial-killed1"
    (stale / "leftImg8bit").mkdir(parents=True)
    other = root.parent / "0123456789abcdef.partial-x"  # another tree's: not this lock holder's to remove
    other.mkdir()
    assert len(synthetic_city.build_synthetic_city(config, progress=False)) == 2
    assert sorted(p.name for p in root.parent.iterdir()) == sorted([root.name, f"{root.name}.lock", other.name])


# ---- checked ahead of training (file headers) ---------------------------------------------------

def test_check_files_finds_what_reading_would_refuse_without_decoding(make_tree):
    root = make_tree({"val": {"frankfurt": 6}})
    CityscapesDataset(root, split="val").check_files()  # a sound split passes
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(_label_file(root, "val", "frankfurt", 0))
    Image.fromarray(np.full(SIZE, 7, np.uint16)).save(_label_file(root, "val", "frankfurt", 1))
    Image.fromarray(np.zeros((8, 32), np.uint8)).save(_label_file(root, "val", "frankfurt", 2))
    _label_file(root, "val", "frankfurt", 3).write_bytes(b"not a png at all, long enough to hold a header")
    with pytest.raises(DataError) as info:
        CityscapesDataset(root, split="val").check_files()
    message = str(info.value)
    assert message.startswith("4 of the 6 image/label pairs of split 'val'")
    for index, problem in ((0, "3 channels"), (1, "16-bit"), (2, "is 32x8"), (3, "not a PNG file")):
        assert f"{_label_file(root, 'val', 'frankfurt', index)}" in message and problem in message
    assert str(_label_file(root, "val", "frankfurt", 4)) not in message


def test_check_files_follows_check_sizes_and_lists_the_first_few(make_tree):
    root = make_tree({"train": {"aachen": 8}})
    for index in range(8):
        Image.fromarray(np.zeros((8, 32), np.uint8)).save(_label_file(root, index=index))
    CityscapesDataset(root, check_sizes=False).check_files()
    with pytest.raises(DataError) as info:
        CityscapesDataset(root).check_files()
    assert f"and {8 - plugin._SHOWN} more" in str(info.value) and "check_sizes: false" in str(info.value)


def test_a_broken_report_label_stops_a_run_before_it_trains(make_tree, cli, tmp_path):
    root = make_tree()
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(_label_file(root, "val", "lindau", 0))
    recipe = tmp_path / "city.yaml"
    recipe.write_text(f"""\
model: {{name: unet, width: 4}}
data:
  dataset: {{name: cityscapes, root: {root}}}
  train: {{split: train}}
  report: {{split: val}}
  train_transforms: [{{name: normalize}}]
loss: {{name: cross_entropy}}
optimizer: {{name: adam}}
trainer: {{epochs: 1, batch_size: 2, select_on: report}}
""")
    status, _, err = cli("run", recipe, "--runs-dir", tmp_path / "runs")
    assert status == 2 and str(_label_file(root, "val", "lindau", 0)) in err and "3 channels" in err
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt"))
