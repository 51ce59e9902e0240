"""The synthetic city: a real Cityscapes tree, deterministic, learnable from shape but not from colour alone."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.errors import SegbenchError
from segbench.functional.metrics import confusion_matrix, mean_iou
from segbench.synth import CITIES, generate_city, image_stem, is_complete, read_marker
from segbench.synth import tree as synth_tree
from segbench.synth.labels import COLOR, INSTANCE_LABELS, LABEL, TRAIN_ID, TRAIN_NAMES
from segbench.synth.scene import render_scene
from segbench.synth.tree import image_rng

SMALL = {"train": 12, "val": 6, "train_extra": 4, "size": (64, 128), "seed": 0}
VOID_IDS = {LABEL[n] for n in ("ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground")}


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "city"
    report = generate_city(root, **SMALL)
    assert report.counts == {"train": 12, "val": 6, "train_extra": 4}
    return root


@pytest.fixture(scope="module")
def moderate_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "city"
    generate_city(root, train=48, val=24, train_extra=0, size=(64, 128), seed=1)
    return root


def _files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _train_ids(path: Path) -> np.ndarray:
    return TRAIN_ID[np.asarray(Image.open(path))]


def _pairs(root: Path, split: str):
    """(image path, fine labelIds path) of every image of ``split``."""
    for image in sorted((root / "leftImg8bit" / split).rglob("*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        yield image, root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"


def test_layout_is_exactly_a_cityscapes_tree(small_tree):
    expected = {".complete"}
    for split in ("train", "val", "train_extra"):
        for index in range(SMALL[split]):
            city, stem = image_stem(split, index)
            assert city in CITIES[split]
            expected.add(f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")
            kinds = ("gtCoarse",) if split == "train_extra" else ("gtFine", "gtCoarse")
            for kind in kinds:
                for suffix in ("labelIds", "instanceIds", "color"):
                    expected.add(f"{kind}/{split}/{city}/{stem}_{kind}_{suffix}.png")
    assert set(_files(small_tree)) == expected
    assert not (small_tree / "gtFine" / "train_extra").exists()
    assert {p.name for p in (small_tree / "leftImg8bit" / "val").iterdir()} <= {"frankfurt", "lindau", "munster"}
    assert image_stem("train", 0) == ("aachen", "aachen_000000_000019")


def test_label_files_hold_valid_cityscapes_ids(small_tree):
    valid = set(LABEL.values())
    for path in sorted(small_tree.rglob("*_labelIds.png")):
        label = Image.open(path)
        assert label.mode == "L" and label.size == (128, 64)
        ids = np.asarray(label)
        assert set(np.unique(ids).tolist()) <= valid, path
        instances = np.asarray(Image.open(str(path).replace("_labelIds", "_instanceIds")), dtype=np.int64)
        is_instance = np.isin(ids, list(INSTANCE_LABELS))
        # Cityscapes' encoding: labelId * 1000 + k for instance classes, the labelId elsewhere.
        assert np.array_equal(np.where(instances >= 1000, instances // 1000, instances), ids)
        assert np.all((instances >= 1000) == is_instance)
        color = np.asarray(Image.open(str(path).replace("_labelIds", "_color")))
        assert np.array_equal(color, COLOR[ids])


def test_same_seed_gives_identical_bytes_and_another_seed_differs(small_tree, tmp_path):
    again = tmp_path / "again"
    generate_city(again, **SMALL, workers=2)  # the process count must not change a byte either
    assert _files(again) == _files(small_tree)
    other = tmp_path / "other"
    generate_city(other, **{**SMALL, "seed": 1})
    first, second = _files(small_tree), _files(other)
    images = [k for k in first if k.endswith("_leftImg8bit.png")]
    assert all(first[k] != second[k] for k in images)


def test_an_image_does_not_depend_on_how_many_are_generated(small_tree, tmp_path):
    fewer = tmp_path / "fewer"
    generate_city(fewer, **{**SMALL, "train": 3, "val": 0, "train_extra": 0})
    files = _files(fewer)
    assert len([k for k in files if k.startswith("leftImg8bit/")]) == 3
    full = _files(small_tree)
    assert all(full[k] == v for k, v in files.items() if k != ".complete")


def test_torchvision_reads_the_tree(small_tree):
    from torchvision.datasets import Cityscapes

    fine = Cityscapes(str(small_tree), split="train", mode="fine", target_type=["semantic", "instance", "color"])
    assert len(fine) == 12
    image, (semantic, instance, color) = fine[0]
    assert image.size == semantic.size == instance.size == color.size == (128, 64)
    assert image.mode == "RGB"
    coarse = Cityscapes(str(small_tree), split="train_extra", mode="coarse", target_type="semantic")
    assert len(coarse) == 4
    image, target = coarse[3]
    assert image.size == target.size == (128, 64)
    assert len(Cityscapes(str(small_tree), split="val", mode="fine", target_type="semantic")) == 6


def test_void_labels_appear(small_tree):
    seen = set()
    for split in ("train", "val"):
        for _, label in _pairs(small_tree, split):
            seen |= set(np.unique(np.asarray(Image.open(label))).tolist())
    assert LABEL["ego vehicle"] in seen
    assert len(seen & VOID_IDS) >= 3, sorted(seen)


def test_coarse_labels_are_a_sparser_agreeing_version_of_the_fine_ones(small_tree):
    fine_unlabelled = coarse_unlabelled = 0
    for split in ("train", "val"):
        for _, fine_path in _pairs(small_tree, split):
            fine = np.asarray(Image.open(fine_path))
            coarse = np.asarray(Image.open(str(fine_path).replace("gtFine", "gtCoarse")))
            assert np.all((coarse == 0) | (coarse == fine))
            fine_unlabelled += int((fine == 0).sum())
            coarse_unlabelled += int((coarse == 0).sum())
            # Large regions survive: road and building are annotated in every coarse image that has them.
            for name in ("road", "building"):
                if (fine == LABEL[name]).sum() > 0.1 * fine.size:
                    assert (coarse == LABEL[name]).any()
    assert coarse_unlabelled > fine_unlabelled + 0.15 * 18 * 64 * 128


def test_colour_alone_does_not_determine_the_class(moderate_tree):
    """A lookup table from quantised colour (16 levels per channel) to the most frequent class, fitted on train,
    must score poorly on val: shape and context are needed."""
    counts = np.zeros((16**3, 19), dtype=np.int64)

    def codes(image_path):
        q = np.asarray(Image.open(image_path)).astype(np.int64) // 16
        return (q[..., 0] * 256 + q[..., 1] * 16 + q[..., 2]).ravel()

    for image, label in _pairs(moderate_tree, "train"):
        target = _train_ids(label).ravel()
        valid = target < 19
        np.add.at(counts, (codes(image)[valid], target[valid]), 1)
    lookup = counts.argmax(axis=1)
    preds, targets = [], []
    for image, label in _pairs(moderate_tree, "val"):
        preds.append(lookup[codes(image)])
        targets.append(_train_ids(label).ravel())
    cm = confusion_matrix(torch.from_numpy(np.concatenate(preds)), torch.from_numpy(np.concatenate(targets)),
                          num_classes=19)
    assert mean_iou(cm) <= 0.40


def test_class_imbalance_is_cityscapes_like(moderate_tree):
    pixels = np.zeros(256, dtype=np.int64)
    for _, label in _pairs(moderate_tree, "train"):
        pixels += np.bincount(_train_ids(label).ravel(), minlength=256)
    share = pixels[:19] / pixels[:19].sum()
    by_name = dict(zip(TRAIN_NAMES, share))
    assert by_name["road"] + by_name["building"] + by_name["vegetation"] + by_name["sky"] > 0.5
    assert by_name["road"] == share.max() or by_name["building"] == share.max()
    # Thin and rare classes stay small (Cityscapes: pole 1.2 %, traffic light 0.2 %, rider 0.1 %); at this small
    # size every far pole is still at least a pixel wide, which inflates its share.
    assert by_name["pole"] < 0.04
    for rare in ("traffic light", "rider", "motorcycle", "bicycle"):
        assert by_name[rare] < 0.01, (rare, by_name[rare])


@pytest.mark.parametrize("index", [0, 7, 18])
def test_a_seed_draws_the_same_street_at_any_resolution(index):
    small = render_scene(image_rng(0, "train", index), 64, 128).label_ids
    large = render_scene(image_rng(0, "train", index), 128, 256).label_ids
    assert (large[::2, ::2] == small).mean() > 0.9  # only edges move by the half-pixel grid shift


@pytest.mark.slow  # writes the whole default tree (about 6 s)
def test_default_train_split_shows_most_classes(tmp_path):
    report = generate_city(tmp_path / "default")  # the defaults: what `segbench synth DIR` writes (~5 s)
    assert len(report.present_classes("gtFine/train")) >= 15
    shares = report.class_shares("gtFine/train")
    assert shares["road"] + shares["building"] + shares["vegetation"] + shares["sky"] > 0.5
    assert report.counts == {"train": 120, "val": 30, "train_extra": 60}


def test_report_counts_every_pixel(small_tree, tmp_path):
    report = generate_city(tmp_path / "r", train=2, val=1, train_extra=1, size=(64, 128), seed=3)
    assert report.counts == {"train": 2, "val": 1, "train_extra": 1}
    assert report.images == 4 and report.images_per_second > 0
    assert sum(report.class_pixels("gtFine/train").values()) == 2 * 64 * 128
    assert sum(report.label_pixels["gtCoarse/train_extra"]) == 64 * 128
    assert "gtFine/train_extra" not in report.label_pixels
    assert "images of 64x128" in str(report)


def test_marker_records_the_parameters(small_tree):
    assert read_marker(small_tree)["seed"] == 0
    assert is_complete(small_tree, **SMALL)
    assert not is_complete(small_tree, **{**SMALL, "train": 13})


def test_an_interrupted_generation_is_detected_and_redone(tmp_path, monkeypatch):
    root = tmp_path / "city"
    real = synth_tree._write_one
    calls = []

    def failing(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(synth_tree, "_write_one", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_city(root, train=4, val=0, train_extra=0, size=(32, 64))
    assert read_marker(root) is None and not is_complete(root, train=4, val=0, train_extra=0, size=(32, 64))
    monkeypatch.setattr(synth_tree, "_write_one", real)
    generate_city(root, train=4, val=0, train_extra=0, size=(32, 64))
    assert is_complete(root, train=4, val=0, train_extra=0, size=(32, 64))


def test_refuses_to_write_into_a_foreign_folder(tmp_path):
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(SegbenchError, match="not written by `segbench synth`"):
        generate_city(tmp_path, train=1, val=0, train_extra=0, size=(32, 64))
    assert (tmp_path / "leftImg8bit").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"size": (16, 32)}, "at least 32x64"),
    ({"train": -1}, "--train -1"),
    ({"seed": -3}, "seed -3"),
])
def test_bad_parameters_are_reported(tmp_path, kwargs, message):
    with pytest.raises(SegbenchError, match=message):
        generate_city(tmp_path / "x", **{"train": 1, "val": 0, "train_extra": 0, "size": (32, 64), **kwargs})


def test_a_damaged_generated_tree_says_to_delete_it_not_to_download_cityscapes(tmp_path):
    from segbench_plugins.synthetic_city import SyntheticCityConfig, build_synthetic_city

    config = SyntheticCityConfig(train=3, val=1, train_extra=0, size=(64, 128), cache_dir=str(tmp_path))
    dataset = build_synthetic_city(config, progress=False)
    dataset.label_path(0).unlink()
    with pytest.raises(SegbenchError) as info:
        build_synthetic_city(config, progress=False)
    message = str(info.value)
    assert "1 image(s) in" in message and "have no label file" in message
    assert f"These files were generated: delete {dataset.root} and the next run generates it again." in message
    assert "cityscapes-dataset.com" not in message
