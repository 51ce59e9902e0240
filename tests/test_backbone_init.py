"""Backbone initialisation: random means random (nothing read or downloaded), files load exactly or fail clearly."""
from __future__ import annotations

import urllib.request

import attrs
import pytest
import torch
import torchvision

from segbench_plugins.resnet50_weights import imagenet_weights_path
from segbench.errors import CheckpointError

DEEPLABS = ["deeplabv3plus", "deeplabv3"]
IMAGENET_FILE = "resnet50-0676ba61.pth"


def _build(registries, name, **settings):
    entry = registries.models.get(name)
    return entry.factory(attrs.evolve(entry.default_config(), **settings), num_classes=19)


@pytest.fixture(scope="module")
def resnet50_state():
    torch.manual_seed(1234)
    return torchvision.models.resnet50(weights=None).state_dict()


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory, resnet50_state):
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(resnet50_state, path)
    return path


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _assert_backbone_equals(model, state):
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    assert [k for k in loaded if not torch.equal(loaded[k], state[k])] == []


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.mark.parametrize("name", DEEPLABS)
def test_random_init_reads_and_downloads_nothing(registries, monkeypatch, torch_home, name):
    def forbidden(*args, **kwargs):
        raise AssertionError("a random initialisation must not read or download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    model = _build(registries, name, pretrained="none")
    assert model.segbench_init == "random"
    assert list(torch_home.iterdir()) == []


@pytest.mark.parametrize("name", DEEPLABS)
def test_random_init_follows_the_torch_seed(registries, name):
    torch.manual_seed(0)
    first = _build(registries, name).backbone.conv1.weight
    torch.manual_seed(1)
    second = _build(registries, name).backbone.conv1.weight
    torch.manual_seed(0)
    again = _build(registries, name).backbone.conv1.weight
    assert not torch.equal(first, second)
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", DEEPLABS)
def test_a_resnet50_state_dict_file_loads_exactly(registries, resnet50_file, resnet50_state, name):
    model = _build(registries, name, pretrained=str(resnet50_file))
    _assert_backbone_equals(model, resnet50_state)
    assert model.segbench_init == f"file:{resnet50_file} sha256:{_sha256(resnet50_file)}"


def test_keys_with_a_backbone_prefix_load(registries, tmp_path, resnet50_state):
    path = tmp_path / "prefixed.pth"
    torch.save({f"backbone.{k}": v for k, v in resnet50_state.items()}, path)
    _assert_backbone_equals(_build(registries, "deeplabv3plus", pretrained=str(path)), resnet50_state)


def test_imagenet_without_the_cached_file_names_where_to_put_it(registries, torch_home):
    expected = torch_home / "hub" / "checkpoints" / IMAGENET_FILE
    assert imagenet_weights_path() == expected
    with pytest.raises(CheckpointError) as error:
        _build(registries, "deeplabv3plus", pretrained="imagenet")
    message = str(error.value)
    assert str(expected) in message
    assert torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url in message
    assert "model.pretrained" in message
    assert not expected.exists()  # nothing was downloaded


def test_imagenet_loads_the_file_from_the_torch_hub_cache(registries, torch_home, resnet50_file, resnet50_state):
    cached = torch_home / "hub" / "checkpoints" / IMAGENET_FILE
    cached.parent.mkdir(parents=True)
    cached.symlink_to(resnet50_file)
    model = _build(registries, "deeplabv3", pretrained="imagenet")
    _assert_backbone_equals(model, resnet50_state)
    assert model.segbench_init == f"imagenet:{cached} sha256:{_sha256(cached)}"


def test_state_dict_of_another_model_is_rejected_with_the_differences(registries, tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError) as error:
        _build(registries, "deeplabv3plus", pretrained=str(path))
    message = str(error.value)
    assert str(path) in message
    assert "missing keys" in message and "layer1.0.conv3.weight" in message
    assert "shape mismatches" in message and "layer2.0.conv1.weight" in message
    assert "more)" in message  # long lists are cut


def test_unexpected_keys_are_listed(registries, tmp_path, resnet50_state):
    path = tmp_path / "extra.pth"
    torch.save({**resnet50_state, "head.classifier.weight": torch.zeros(19, 256, 1, 1)}, path)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys: head\.classifier\.weight"):
        _build(registries, "deeplabv3plus", pretrained=str(path))


def _truncated_checkpoint() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(4, 4).state_dict(), buffer)
    return buffer.getvalue()[:200]


@pytest.mark.parametrize(("content", "expected"), [
    (b"not a checkpoint at all", "could not read"),
    (_truncated_checkpoint(), "could not read"),
    (None, "does not exist"),
])
def test_unreadable_or_missing_files_are_rejected(registries, tmp_path, content, expected):
    path = tmp_path / "weights.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as error:
        _build(registries, "deeplabv3", pretrained=str(path))
    assert str(path) in str(error.value)


@pytest.mark.parametrize(("saved", "expected"), [
    (torch.zeros(3), "not a state dict"),
    ({}, "empty"),
    ({"model": {"conv1.weight": torch.zeros(1)}, "epoch": 3}, r"checkpoint\['model'\]"),
])
def test_files_that_are_not_state_dicts_are_rejected(registries, tmp_path, saved, expected):
    path = tmp_path / "weights.pth"
    torch.save(saved, path)
    with pytest.raises(CheckpointError, match=expected):
        _build(registries, "deeplabv3plus", pretrained=str(path))


# LR-ASPP's MobileNetV3-Large backbone takes `pretrained` exactly as the ResNet50 models do.
MOBILENET_FILE = "mobilenet_v3_large-8738ca79.pth"


@pytest.fixture(scope="module")
def mobilenet_state():
    torch.manual_seed(4321)
    return torchvision.models.mobilenet_v3_large(weights=None).state_dict()


def test_lraspp_random_init_reads_nothing(registries, monkeypatch, torch_home):
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a random initialisation must not read weights"))
    assert _build(registries, "lraspp_mobilenet_v3").segbench_init == "random"
    assert list(torch_home.iterdir()) == []


def test_lraspp_loads_torchvisions_mobilenet_v3_large_file(registries, tmp_path, torch_home, mobilenet_state):
    from segbench_plugins.lraspp import MOBILENET_V3_LARGE

    cached = imagenet_weights_path(MOBILENET_V3_LARGE)
    assert cached == torch_home / "hub" / "checkpoints" / MOBILENET_FILE
    with pytest.raises(CheckpointError) as error:
        _build(registries, "lraspp_mobilenet_v3", pretrained="imagenet")
    assert str(cached) in str(error.value) and "MobileNetV3-Large" in str(error.value)
    assert torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1.url in str(error.value)
    assert not cached.exists()  # nothing was downloaded

    path = tmp_path / "mobilenet.pth"
    torch.save(mobilenet_state, path)
    for pretrained in (str(path), "imagenet"):
        if pretrained == "imagenet":
            cached.parent.mkdir(parents=True)
            cached.symlink_to(path)
        model = _build(registries, "lraspp_mobilenet_v3", pretrained=pretrained)
        loaded = model.backbone.state_dict()
        assert [k for k in loaded if not torch.equal(loaded[k], mobilenet_state[f"features.{k}"])] == []
    assert model.segbench_init == f"imagenet:{cached} sha256:{_sha256(cached)}"


def test_lraspp_rejects_a_resnet50_file(registries, resnet50_file):
    with pytest.raises(CheckpointError, match="do not fit a MobileNetV3-Large backbone"):
        _build(registries, "lraspp_mobilenet_v3", pretrained=str(resnet50_file))


def test_weights_with_nan_are_refused_naming_the_file_and_tensors(registries, tmp_path, resnet50_state):
    state = dict(resnet50_state)
    state["conv1.weight"] = state["conv1.weight"].clone()
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    state["layer4.2.bn3.bias"] = torch.full_like(state["layer4.2.bn3.bias"], float("inf"))
    path = tmp_path / "diverged.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        _build(registries, "deeplabv3plus", pretrained=str(path))
    assert str(path) in str(info.value) and "conv1.weight, layer4.2.bn3.bias" in str(info.value)
    assert "NaN or infinite" in str(info.value)
