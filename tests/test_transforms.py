"""Recipe-described pipelines: parsing, error messages, and reproducible training items."""
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from segbench.data.transformed import SeededShuffleSampler, TransformedDataset, epoch_permutation
from segbench.errors import ConfigError, DataError, SegbenchError
from segbench.transforms import Pipeline
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries
from segbench.transforms import parse_pipeline as parse_with

# The built-in transforms, looked up as a recipe's lists are.
TRANSFORMS = build_registries(make_plugin_manager(load_entry_points=False)).transforms


def parse_pipeline(specs, *, path):
    return parse_with(specs, path=path, transforms=TRANSFORMS)
from segbench_plugins.transforms import ColorJitterConfig, RandomScaleCropConfig

RECIPE = """
train_transforms:
  - {name: random_scale_crop, scale: [0.75, 1.25], size: [16, 32], pad: true}
  - {name: hflip, p: 0.5}
  - {name: color_jitter, brightness: 0.25, contrast: 0.25, saturation: 0.25, hue: 0.0}
  - {name: normalize}
eval_transforms:
  - {name: normalize}
"""


def pair(height=24, width=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    mask = torch.randint(0, 19, (height, width), dtype=torch.uint8, generator=generator)
    return image, mask


def problems(specs):
    with pytest.raises(ConfigError) as info:
        parse_pipeline(specs, path="data.train_transforms")
    return dict(info.value.problems)


def test_recipe_pipelines_parse_into_configs_and_produce_model_inputs():
    sections = yaml.safe_load(RECIPE)
    train = parse_pipeline(sections["train_transforms"], path="data.train_transforms")
    evaluate = parse_pipeline(sections["eval_transforms"], path="data.eval_transforms")
    assert train.names == ("random_scale_crop", "hflip", "color_jitter", "normalize")
    assert train.steps[0].config == RandomScaleCropConfig(scale=(0.75, 1.25), size=(16, 32), pad=True)
    assert train.steps[2].config == ColorJitterConfig(0.25, 0.25, 0.25, 0.0)

    image, mask = pair()
    out_image, out_mask = train(image, mask, torch.Generator().manual_seed(0))
    assert out_image.dtype == torch.float32 and tuple(out_image.shape) == (3, 16, 32)
    assert out_mask.dtype == torch.int64 and tuple(out_mask.shape) == (16, 32)
    eval_image, eval_mask = evaluate(image, mask, torch.Generator())
    assert tuple(eval_image.shape) == (3, 24, 40) and torch.equal(eval_mask, mask.long())
    # ImageNet statistics by default: (x / 255 - mean) / std per channel.
    pixel = torch.tensor([255, 0, 128], dtype=torch.uint8).view(3, 1, 1)
    expected = torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, (128 / 255 - 0.406) / 0.225]).view(3, 1, 1)
    torch.testing.assert_close(evaluate(pixel, mask[:1, :1], torch.Generator())[0], expected)


def test_defaults_fill_missing_options():
    pipeline = parse_pipeline([{"name": "random_scale_crop"}, {"name": "hflip"}, {"name": "normalize"}], path="t")
    assert pipeline.steps[0].config == RandomScaleCropConfig()
    assert pipeline.steps[0].config.size == (512, 1024) and pipeline.steps[1].config.p == 0.5


def test_every_problem_is_reported_with_its_path():
    found = problems([
        {"name": "hflip", "p": 1.5},
        {"name": "random_scale_crop", "scale": [1.25, 0.75], "size": [0, 32]},
        {"name": "random_crop"},
        {"name": "color_jitter", "brightnes": 0.2},
        {"name": "color_jitter", "hue": "0.1"},
        "hflip",
        {"name": "normalize", "std": [0.2, 0.0, 0.2]},
    ])
    assert set(found) == {
        "data.train_transforms[0].p", "data.train_transforms[1].scale", "data.train_transforms[1].size",
        "data.train_transforms[2].name", "data.train_transforms[3]", "data.train_transforms[4].hue",
        "data.train_transforms[5]", "data.train_transforms[6].std",
    }
    assert "unknown transform 'random_crop'" in found["data.train_transforms[2].name"]
    assert "random_scale_crop" in found["data.train_transforms[2].name"]  # the available names are listed
    assert "brightnes" in found["data.train_transforms[3]"] and "brightness" in found["data.train_transforms[3]"]
    assert "remove the quotes" in found["data.train_transforms[4].hue"]


def test_normalize_must_come_last_exactly_once():
    assert "must end with {name: normalize}" in problems([{"name": "hflip"}])["data.train_transforms"]
    assert "must end with {name: normalize}" in problems([])["data.train_transforms"]
    found = problems([{"name": "normalize"}, {"name": "hflip"}])
    assert set(found) == {"data.train_transforms[0]", "data.train_transforms"}
    assert "last" in problems([{"name": "normalize"}, {"name": "normalize"}])["data.train_transforms[0]"]


def test_crop_larger_than_image_without_padding_names_the_transform():
    pipeline = parse_pipeline([{"name": "random_scale_crop", "scale": [1.0, 1.0], "size": [32, 32], "pad": False},
                               {"name": "normalize"}], path="data.train_transforms")
    with pytest.raises(SegbenchError) as info:
        pipeline(*pair(24, 40), torch.Generator())
    assert isinstance(info.value, ConfigError)
    (path, message), = info.value.problems
    assert path == "data.train_transforms[0].size"
    assert "32x32 crop does not fit a 24x40 image" in message and "pad: true" in message


def test_padding_uses_the_pipeline_ignore_index():
    pipeline = parse_pipeline([{"name": "random_scale_crop", "scale": [1.0, 1.0], "size": [30, 40]},
                               {"name": "normalize"}], path="t")
    _, mask = Pipeline(pipeline.steps, ignore_index=250)(*pair(24, 40), torch.Generator())
    assert (mask == 250).sum() == 6 * 40


def test_inputs_of_the_wrong_kind_are_data_errors():
    pipeline = parse_pipeline([{"name": "normalize"}], path="t")
    image, mask = pair()
    with pytest.raises(DataError, match="uint8 RGB image"):
        pipeline(image.float() / 255, mask, torch.Generator())
    with pytest.raises(DataError, match="differ in size"):
        pipeline(image, mask[:, :-1], torch.Generator())
    with pytest.raises(DataError, match="uint8 label"):
        pipeline(image, mask.long(), torch.Generator())


# ---- TransformedDataset and shuffling ----------------------------------------------------------

class TinyDataset(torch.utils.data.Dataset):
    """Eight distinct in-memory (image, mask) pairs."""

    def __init__(self, n=8):
        self.items = [pair(20, 28, seed=i) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def train_pipeline():
    return parse_pipeline(yaml.safe_load(RECIPE)["train_transforms"], path="data.train_transforms")


def epoch_batches(num_workers, *, seed, epoch):
    dataset = TransformedDataset(TinyDataset(), train_pipeline(), seed=seed)
    sampler = SeededShuffleSampler(len(dataset), seed=seed)
    dataset.set_epoch(epoch)
    sampler.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=3, sampler=sampler, num_workers=num_workers, drop_last=True)
    return list(loader)


def test_batches_do_not_depend_on_the_number_of_workers():
    single = epoch_batches(0, seed=7, epoch=1)
    assert len(single) == 2  # 8 items, batches of 3, the incomplete last batch dropped
    for (images, masks), (images_2, masks_2) in zip(single, epoch_batches(2, seed=7, epoch=1), strict=True):
        assert torch.equal(images, images_2) and torch.equal(masks, masks_2)


def test_items_depend_on_seed_epoch_and_index_only():
    dataset = TransformedDataset(TinyDataset(), train_pipeline(), seed=3)
    first = [dataset[i] for i in range(4)]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, [dataset[i] for i in reversed(range(4))][::-1]))
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][0], first[0][0])
    dataset.set_epoch(0)
    assert torch.equal(dataset[0][0], first[0][0])
    assert not torch.equal(TransformedDataset(TinyDataset(), train_pipeline(), seed=4)[0][0], first[0][0])


class CountingReads(TinyDataset):
    """TinyDataset that counts how often each item is read (decoded, for a dataset on disk)."""

    def __init__(self, n=8):
        super().__init__(n)
        self.reads = [0] * n

    def __getitem__(self, index):
        self.reads[index] += 1
        return super().__getitem__(index)


def test_kept_decoded_items_give_the_same_epochs_and_are_read_once():
    base = CountingReads()
    kept = TransformedDataset(base, train_pipeline(), seed=5, keep_decoded=True)
    plain = TransformedDataset(TinyDataset(), train_pipeline(), seed=5)
    for epoch in range(3):
        kept.set_epoch(epoch)
        plain.set_epoch(epoch)
        for index in range(len(plain)):
            assert all(torch.equal(a, b) for a, b in zip(kept[index], plain[index]))
    assert base.reads == [1] * len(base)


def test_a_dataset_can_ask_to_be_read_every_epoch():
    class ReadAnew(CountingReads):
        keep_decoded = False

    base = ReadAnew()
    dataset = TransformedDataset(base, train_pipeline(), seed=5, keep_decoded=True)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        [dataset[index] for index in range(len(base))]
    assert base.reads == [2] * len(base)


def test_a_transform_working_in_place_does_not_change_the_kept_items():
    def brighten_in_place(image, mask, generator):
        return image.add_(1), mask.add_(1)

    base = TinyDataset()
    original = [tuple(t.clone() for t in item) for item in base.items]
    dataset = TransformedDataset(base, brighten_in_place, seed=0, keep_decoded=True)
    for _ in range(3):
        image, mask = dataset[2]
    assert torch.equal(image, original[2][0] + 1) and torch.equal(mask, original[2][1] + 1)


def test_a_split_too_large_to_keep_decoded_is_read_every_time():
    from segbench.data.decoded_cache import DecodedCache

    class LaterItemsLarger(CountingReads):
        def __init__(self):
            super().__init__()
            self.items[1:] = [pair(200, 280, seed=i) for i in range(1, 8)]

    small = sum(t.numel() * t.element_size() for t in TinyDataset().items[0])
    # Too large judged from the first item times the split's length; then from the items kept so far.
    for base, budget in ((CountingReads(), 8 * small - 1), (LaterItemsLarger(), 8 * small)):
        cache = DecodedCache(base, budget=budget)
        for _ in range(2):
            for index in range(len(base)):
                assert all(torch.equal(a, b) for a, b in zip(cache[index], base.items[index]))
        assert not cache.active and base.reads[2:] == [2] * 6


def test_dataset_ignore_index_reaches_the_padding():
    base = TinyDataset()
    base.info = type("Info", (), {"ignore_index": 200})()
    pipeline = parse_pipeline([{"name": "random_scale_crop", "scale": [1.0, 1.0], "size": [24, 28]},
                               {"name": "normalize"}], path="t")
    _, mask = TransformedDataset(base, pipeline, seed=0)[0]
    assert (mask == 200).sum() == 4 * 28


def test_a_bad_item_is_reported_with_its_file():
    class Mismatched(TinyDataset):
        def __getitem__(self, index):
            image, mask = super().__getitem__(index)
            return image, mask[:-2]

        def image_path(self, index):
            return f"/data/city/img_{index}.png"

    with pytest.raises(DataError, match=r"/data/city/img_3.png: image \(20x28\) and label \(18x28\) differ"):
        TransformedDataset(Mismatched(), train_pipeline(), seed=0)[3]


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    order = epoch_permutation(50, seed=1, epoch=0)
    assert sorted(order) == list(range(50))
    assert order == epoch_permutation(50, seed=1, epoch=0)
    assert order != epoch_permutation(50, seed=1, epoch=1)
    assert order != epoch_permutation(50, seed=2, epoch=0)
    sampler = SeededShuffleSampler(50, seed=1)
    assert list(sampler) == order and len(sampler) == 50
