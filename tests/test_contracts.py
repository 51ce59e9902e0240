"""Contract tests over every registered non-model component (models: tests/test_models.py)."""
import attrs
import pytest
import torch

from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

REGISTRIES = build_registries(make_plugin_manager(load_entry_points=False))
# Settings that keep a default-configured dataset small, or give it data to read.
DATASET_SETTINGS = {"synthetic_city": {"train": 4, "val": 2, "train_extra": 2, "size": (64, 128)}}


def _dataset(name, tmp_path_factory):
    entry = REGISTRIES.datasets.get(name)
    settings = dict(DATASET_SETTINGS.get(name, {}))
    if name == "cityscapes":  # read a generated tree through the real reader
        from segbench.synth import generate_city

        root = tmp_path_factory.mktemp("cityscapes")
        generate_city(root, train=3, val=1, train_extra=1, size=(64, 128), seed=1)
        settings["root"] = str(root)
    return entry.factory(attrs.evolve(entry.default_config(), **settings))


@pytest.mark.parametrize("name", REGISTRIES.datasets.names())
def test_dataset_yields_uint8_images_and_train_id_masks(name, tmp_path_factory):
    dataset = _dataset(name, tmp_path_factory)
    assert len(dataset) > 0
    info = dataset.info
    image, mask = dataset[0]
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    assert mask.dtype == torch.uint8 and mask.shape == image.shape[1:]
    values = set(torch.unique(mask).tolist())
    assert values <= set(range(len(info.class_names))) | {info.ignore_index}
    assert torch.equal(dataset.read_mask(0), mask)
    assert len(info.palette) == len(info.class_names)
    assert isinstance(dataset.sample_id(0), str) and dataset.fingerprint()


@pytest.mark.parametrize("name", REGISTRIES.losses.names())
def test_loss_is_a_differentiable_scalar_that_ignores_ignored_pixels(name):
    entry = REGISTRIES.losses.get(name)
    loss = entry.factory(entry.default_config(), ignore_index=255, class_weights=None)
    logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    target = torch.randint(0, 5, (2, 8, 8))
    value = loss(logits, target)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    masked = target.clone()
    masked[:, :4] = 255
    grad_logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    loss(grad_logits, masked).backward()
    assert torch.all(grad_logits.grad[:, :, :4] == 0), "ignored pixels must not receive gradient"


@pytest.mark.parametrize("name", REGISTRIES.optimizers.names())
def test_optimizer_steps_every_parameter_group(name):
    entry = REGISTRIES.optimizers.get(name)
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    optimizer = entry.factory(entry.default_config(), param_groups=[{"params": [a], "lr": 0.5}, {"params": [b]}])
    (a.sum() + b.sum()).backward()
    optimizer.step()
    assert not torch.equal(a.detach(), torch.ones(3)) and not torch.equal(b.detach(), torch.ones(3))
    assert optimizer.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize("name", REGISTRIES.schedulers.names())
def test_scheduler_state_round_trips(name):
    entry = REGISTRIES.schedulers.get(name)
    make = lambda: torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)  # noqa: E731
    optimizer = make()
    scheduler = entry.factory(entry.default_config(), optimizer=optimizer, total_iterations=20,
                              iterations_per_epoch=5)
    for step in range(7):
        scheduler.step_iteration()
        if step % 5 == 4:
            scheduler.step_epoch(0.1)
    copy_optimizer = make()
    copy = entry.factory(entry.default_config(), optimizer=copy_optimizer, total_iterations=20,
                         iterations_per_epoch=5)
    copy.load_state_dict(scheduler.state_dict())
    copy_optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    for _ in range(3):
        scheduler.step_iteration()
        copy.step_iteration()
    assert copy_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("name", REGISTRIES.class_weightings.names())
def test_class_weighting_gives_positive_weights_per_class(name):
    entry = REGISTRIES.class_weightings.get(name)
    weights = entry.factory(entry.default_config())(torch.tensor([1000.0, 100.0, 10.0, 1.0], dtype=torch.float64))
    assert weights.shape == (4,) and weights.dtype == torch.float32 and torch.all(weights > 0)


@pytest.mark.parametrize("name", REGISTRIES.strategies.names())
def test_strategy_has_the_two_stage_methods(name):
    entry = REGISTRIES.strategies.get(name)
    strategy = entry.factory(entry.default_config())
    assert callable(strategy.upstream) and callable(strategy.prepare)


@pytest.mark.parametrize("model", ["unet", "fast_scnn"])
def test_pretrained_strategy_on_a_model_without_pretrained_weights_says_to_train_from_scratch(model):
    from segbench.errors import RecipeError

    entry = REGISTRIES.models.get(model)
    network = entry.factory(entry.default_config(), num_classes=19)
    strategy = REGISTRIES.strategies.get("pretrained")
    with pytest.raises(RecipeError) as info:
        strategy.factory(strategy.default_config()).prepare(network, upstream_run=None)
    assert f"this {type(network).__name__} starts from random ones" in str(info.value)
    assert "use strategy: scratch" in str(info.value)


@pytest.mark.parametrize("name", REGISTRIES.loggers.names())
def test_logger_drops_what_lies_beyond_the_step_it_restarts_from(name, tmp_path):
    """Every logger takes the records of a run, and a restart at a checkpoint's step keeps the steps up to
    it and drops later ones (the files it writes stay in the run directory)."""
    import numpy as np

    from segbench.engine.loggers import Logger, PredictionPanel, RunStart
    from segbench.records import SelectionRecord, TrainStepRecord

    entry = REGISTRIES.loggers.get(name)
    start = RunStart(tmp_path, "toy", "seed: 0\n", {"seed": 0, "optimizer.lr": 0.1}, ("a", "b"), 0, False)
    blank = np.zeros((8, 8), dtype=np.uint8)
    panel = PredictionPanel("x", np.zeros((8, 8, 3), dtype=np.uint8), blank, blank, ("a", "b"),
                            ((0, 0, 0), (255, 255, 255)), 255)
    for attempt, (first, last) in enumerate([(1, 6), (5, 8)]):
        logger = entry.factory(entry.default_config(), run_dir=tmp_path)
        assert isinstance(logger, Logger)
        logger.start(start if attempt == 0 else attrs.evolve(start, iteration=4, resumed=True))
        for step in range(first, last + 1):
            logger.train(TrainStepRecord(epoch=0, iteration=step, loss=1.0 / step, lr=0.1, images_per_s=10.0))
            if step % 2 == 0:
                logger.evaluate(SelectionRecord(split="select", epoch=0, iteration=step, mIoU=0.5, best_mIoU=0.5,
                                                lr=0.1, per_class_iou={"a": 0.4, "b": None}),
                                [panel] * logger.panels)
            logger.flush()
        logger.close()
    written = [p for p in tmp_path.iterdir() if p.is_file()]
    assert written, f"logger {name} wrote nothing to the run directory"


@pytest.mark.parametrize("name", REGISTRIES.transforms.names())
def test_transform_is_reproducible_and_keeps_labels(name):
    entry = REGISTRIES.transforms.get(name)
    step = entry.factory(entry.default_config())
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 24, 40), dtype=torch.uint8, generator=generator)
    mask = torch.tensor([0, 5, 255], dtype=torch.uint8)[torch.randint(3, (24, 40), generator=generator)]
    first = step(image, mask, torch.Generator().manual_seed(1), 255)
    again = step(image, mask, torch.Generator().manual_seed(1), 255)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    out_image, out_mask = first
    assert out_image.shape[0] == 3 and out_image.shape[-2:] == out_mask.shape
    assert out_image.dtype == (torch.float32 if entry.final else torch.uint8)
    assert set(out_mask.unique().tolist()) <= {0, 5, 255}


@pytest.mark.parametrize("kind_and_name", [(kind, entry.name) for kind, registry in REGISTRIES.by_kind.items()
                                           for entry in registry if entry.smoke is not None],
                         ids=lambda pair: "-".join(pair))
def test_smoke_variant_gives_a_valid_config(kind_and_name):
    from segbench.config import structure_config, unstructure
    from segbench.registry import Substitute

    kind, name = kind_and_name
    entry = REGISTRIES[kind].get(name)
    variant = entry.smoke_config(entry.default_config())
    if isinstance(variant, Substitute):
        entry, variant = REGISTRIES[kind].get(variant.name), variant.config
    assert isinstance(variant, entry.config)
    assert structure_config(entry.config, unstructure(variant), path=kind) == variant  # survives the recipe
