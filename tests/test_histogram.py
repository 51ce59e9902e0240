"""The class-histogram pass: exact counts, ignored pixels excluded, cached by the dataset fingerprint."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.data.histogram import class_histogram
from segbench.errors import DataError
from segbench_plugins.cityscapes import CityscapesDataset


def _tree(root, masks):
    """A Cityscapes tree whose label files hold ``masks`` (labelIds), one image each."""
    for index, label_ids in enumerate(masks):
        stem = f"aachen_{index:06d}_000019"
        for folder, name, array in (("leftImg8bit", "leftImg8bit", np.zeros((*label_ids.shape, 3), np.uint8)),
                                    ("gtFine", "gtFine_labelIds", label_ids)):
            path = root / folder / "train" / "aachen" / f"{stem}_{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
    return root


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 34, (12, 20), dtype=np.uint8) for _ in range(4)]
    return CityscapesDataset(_tree(tmp_path / "cityscapes", masks))


def _direct_count(dataset, num_classes=19):
    masks = torch.stack([dataset[i][1] for i in range(len(dataset))]).flatten().long()
    return torch.stack([(masks == c).sum() for c in range(num_classes)]).double()


def test_counts_equal_a_direct_count_without_ignored_pixels(dataset):
    counts = class_histogram(dataset, num_classes=19, cache_dir=None, progress=False)
    assert counts.dtype == torch.float64 and counts.shape == (19,)
    assert torch.equal(counts, _direct_count(dataset))
    labelled = sum(int((dataset.read_mask(i) != 255).sum()) for i in range(len(dataset)))
    assert counts.sum() == labelled < 4 * 12 * 20  # some labelIds are void


def test_workers_give_the_same_counts(dataset):
    serial = class_histogram(dataset, num_classes=19, cache_dir=None, progress=False)
    assert torch.equal(class_histogram(dataset, num_classes=19, cache_dir=None, progress=False, num_workers=2),
                       serial)


def test_cache_hit_does_not_read_masks(dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = class_histogram(dataset, num_classes=19, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.json"))) == 1 and not list(cache.glob("*.tmp"))

    def no_reading(index):
        raise AssertionError("the cached histogram should have been used")

    monkeypatch.setattr(dataset, "read_mask", no_reading)
    assert torch.equal(class_histogram(dataset, num_classes=19, cache_dir=cache, progress=False), first)


def test_changed_labels_give_a_new_key(dataset, tmp_path):
    cache = tmp_path / "cache"
    before = class_histogram(dataset, num_classes=19, cache_dir=cache, progress=False)
    Image.fromarray(np.full((12, 20), 7, np.uint8)).save(dataset.label_path(0))  # all road
    reread = CityscapesDataset(dataset.root)
    after = class_histogram(reread, num_classes=19, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.json"))) == 2
    assert torch.equal(after, _direct_count(reread)) and not torch.equal(after, before)


def test_a_damaged_cache_file_is_recounted(dataset, tmp_path):
    cache = tmp_path / "cache"
    expected = class_histogram(dataset, num_classes=19, cache_dir=cache, progress=False)
    (cache_file,) = cache.glob("*.json")
    cache_file.write_text("{ truncated")
    assert torch.equal(class_histogram(dataset, num_classes=19, cache_dir=cache, progress=False), expected)
    assert json.loads(cache_file.read_text())["counts"] == expected.long().tolist()


def test_a_mask_value_outside_the_classes_names_the_file(dataset, monkeypatch):
    original = dataset.read_mask

    def with_stray_value(index):
        mask = original(index)
        if index == 2:
            mask[0, 0] = 19
        return mask

    monkeypatch.setattr(dataset, "read_mask", with_stray_value)
    with pytest.raises(DataError) as info:
        class_histogram(dataset, num_classes=19, cache_dir=None, progress=False)
    assert str(dataset.label_path(2)) in str(info.value) and "19" in str(info.value)
