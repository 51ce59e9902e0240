"""Learning-rate schedules: the pure factors and the scheduler plugins (warm-up, plateau, resume)."""
import io
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from segbench.errors import CheckpointError, ConfigError
from segbench.functional.lr import cosine_factor, poly_factor, warmup_factor
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

BACKBONE_LR, HEAD_LR = 0.001, 0.01


@pytest.fixture(scope="module")
def schedulers():
    manager = make_plugin_manager(builtins=["segbench_plugins.schedulers"], load_entry_points=False)
    return build_registries(manager).schedulers


def make_optimizer():
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": BACKBONE_LR},
        {"params": [torch.nn.Parameter(torch.zeros(2))]},
    ]
    return torch.optim.SGD(groups, lr=HEAD_LR, momentum=0.9)


def build(schedulers, name, total=20, optimizer=None, **config):
    entry = schedulers.get(name)
    optimizer = optimizer or make_optimizer()
    scheduler = entry.factory(
        entry.config(**config), optimizer=optimizer, total_iterations=total, iterations_per_epoch=5
    )
    return optimizer, scheduler


def lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


@settings(deadline=None)
@given(st.integers(1, 10_000), st.data(), st.floats(0.1, 3.0))
def test_poly_factor_decays_from_one_to_zero(total, data, power):
    i, j = sorted(data.draw(st.lists(st.integers(0, 2 * total), min_size=2, max_size=2)))
    assert poly_factor(0, total, power=power) == 1.0 and poly_factor(total, total, power=power) == 0.0
    assert 1.0 >= poly_factor(i, total, power=power) >= poly_factor(j, total, power=power) >= 0.0


@settings(deadline=None)
@given(st.integers(1, 10_000), st.data(), st.floats(0.0, 1.0))
def test_cosine_factor_decays_from_one_to_min_ratio(total, data, min_ratio):
    i, j = sorted(data.draw(st.lists(st.integers(0, 2 * total), min_size=2, max_size=2)))
    assert cosine_factor(0, total, min_ratio=min_ratio) == 1.0
    assert cosine_factor(total, total, min_ratio=min_ratio) == pytest.approx(min_ratio)
    assert cosine_factor(i, total, min_ratio=min_ratio) >= cosine_factor(j, total, min_ratio=min_ratio) - 1e-12


@settings(deadline=None)
@given(st.integers(1, 1000), st.floats(1e-4, 0.9), st.data())
def test_warmup_factor_is_linear_then_one(warmup, start, data):
    i = data.draw(st.integers(0, 2 * warmup))
    expected = start + (1 - start) * i / warmup if i < warmup else 1.0
    assert warmup_factor(i, warmup, start_ratio=start) == pytest.approx(expected)
    assert warmup_factor(i, 0, start_ratio=start) == 1.0


def test_poly_reaches_min_lr_at_the_end(schedulers):
    optimizer, scheduler = build(schedulers, "poly", total=20, power=0.9)
    assert lrs(optimizer) == [BACKBONE_LR, HEAD_LR]
    seen = []
    for i in range(1, 21):
        scheduler.step_iteration()
        seen.append(lrs(optimizer)[1])
        assert lrs(optimizer)[1] == pytest.approx(HEAD_LR * (1 - i / 20) ** 0.9)
    assert seen == sorted(seen, reverse=True) and seen[-1] == 0.0

    optimizer, scheduler = build(schedulers, "poly", total=20, min_lr=1e-4)
    for _ in range(20):
        scheduler.step_iteration()
    assert lrs(optimizer) == pytest.approx([1e-4, 1e-4])


def test_cosine_ends_at_min_lr(schedulers):
    optimizer, scheduler = build(schedulers, "cosine", total=10, min_lr=1e-4)
    for i in range(1, 11):
        scheduler.step_iteration()
        if i == 5:
            assert lrs(optimizer)[1] == pytest.approx(1e-4 + (HEAD_LR - 1e-4) / 2)
    assert lrs(optimizer) == pytest.approx([1e-4, 1e-4])


@pytest.mark.parametrize("name", ["constant", "poly", "cosine", "plateau"])
def test_warmup_ramps_linearly(schedulers, name):
    optimizer, scheduler = build(schedulers, name, total=1000, warmup_iterations=4, warmup_ratio=0.2)
    ramp = [lrs(optimizer)[1]]
    for _ in range(4):
        scheduler.step_iteration()
        ramp.append(lrs(optimizer)[1])
    assert ramp[0] == pytest.approx(HEAD_LR * 0.2)
    steps = [b - a for a, b in zip(ramp, ramp[1:])]
    if name in ("constant", "plateau"):
        assert ramp[-1] == pytest.approx(HEAD_LR) and steps == pytest.approx([HEAD_LR * 0.2] * 4)
    else:  # warm-up multiplies the decaying schedule
        assert ramp == pytest.approx([HEAD_LR * warmup_factor(i, 4, start_ratio=0.2) * (
            poly_factor(i, 1000) if name == "poly" else cosine_factor(i, 1000)) for i in range(5)])


def test_plateau_halves_after_patience_evaluations_without_improvement(schedulers):
    optimizer, scheduler = build(schedulers, "plateau", patience=2, factor=0.5)
    scheduler.step_epoch(0.40)  # best so far
    scheduler.step_epoch(0.45)  # improvement resets the count
    for _ in range(2):  # `patience` evaluations without improvement are tolerated
        scheduler.step_epoch(0.45)
        scheduler.step_iteration()
        assert lrs(optimizer) == [BACKBONE_LR, HEAD_LR]
    scheduler.step_epoch(0.44)  # one more: halved, both groups
    assert lrs(optimizer) == pytest.approx([BACKBONE_LR / 2, HEAD_LR / 2])
    scheduler.step_epoch(None)  # no evaluation value: nothing happens
    scheduler.step_epoch(math.nan)
    scheduler.step_iteration()
    assert lrs(optimizer) == pytest.approx([BACKBONE_LR / 2, HEAD_LR / 2])


def test_plateau_respects_min_lr(schedulers):
    optimizer, scheduler = build(schedulers, "plateau", patience=0, factor=0.1, min_lr=5e-4)
    for metric in (0.5, 0.4, 0.4, 0.4):
        scheduler.step_epoch(metric)
    assert lrs(optimizer) == pytest.approx([BACKBONE_LR * 0.5, 5e-4])


@pytest.mark.parametrize("name", ["constant", "poly", "cosine", "plateau"])
def test_param_group_ratio_is_preserved(schedulers, name):
    config = dict(warmup_iterations=3, patience=0) if name == "plateau" else dict(warmup_iterations=3)
    optimizer, scheduler = build(schedulers, name, total=30, **config)
    for i in range(30):
        backbone, head = lrs(optimizer)
        assert head == 0.0 or backbone / head == pytest.approx(BACKBONE_LR / HEAD_LR)
        scheduler.step_iteration()
        if i % 5 == 4:
            scheduler.step_epoch(0.5)


def roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", ["constant", "poly", "cosine", "plateau"])
def test_state_dict_resumes_exactly(schedulers, name):
    config = dict(warmup_iterations=3, patience=1) if name == "plateau" else dict(warmup_iterations=3)
    metrics = [0.3, 0.35, 0.34, 0.33, 0.36, 0.2, 0.2, 0.2]
    optimizer, scheduler = build(schedulers, name, total=40, **config)
    for i in range(12):
        scheduler.step_iteration()
        if i % 3 == 2:
            scheduler.step_epoch(metrics[i // 3])
    saved = roundtrip({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    # Resume as a run does: fresh optimizer and scheduler from the recipe, then load both states.
    resumed_optimizer, resumed = build(schedulers, name, total=40, **config)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert lrs(resumed_optimizer) == lrs(optimizer)
    for i in range(12, 40):
        for sched in (scheduler, resumed):
            sched.step_iteration()
            if i % 3 == 2:
                sched.step_epoch(metrics[(i // 3) % len(metrics)])
        assert lrs(resumed_optimizer) == lrs(optimizer)


def test_mismatched_checkpoint_state_is_a_checkpoint_error(schedulers):
    _, scheduler = build(schedulers, "poly")
    state = scheduler.state_dict()
    single = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    _, other = build(schedulers, "poly", optimizer=single)
    with pytest.raises(CheckpointError, match="2 parameter group"):
        other.load_state_dict(state)
    _, plateau = build(schedulers, "plateau")
    with pytest.raises(CheckpointError, match="plateau_lrs"):
        plateau.load_state_dict(state)


def test_warmup_longer_than_the_run_is_a_config_error(schedulers):
    with pytest.raises(ConfigError, match="scheduler.warmup_iterations") as info:
        build(schedulers, "poly", total=96, warmup_iterations=100)
    assert "run's 96 iterations" in str(info.value) and "scheduler.warmup_iterations=9" in str(info.value)


def test_registered_names_and_defaults(schedulers):
    assert schedulers.names() == ["constant", "cosine", "plateau", "poly"]
    poly, plateau = schedulers.get("poly").default_config(), schedulers.get("plateau").default_config()
    assert (poly.power, poly.warmup_iterations, poly.warmup_ratio, poly.min_lr) == (0.9, 0, 0.001, 0.0)
    assert (plateau.patience, plateau.factor, plateau.min_lr, plateau.threshold) == (4, 0.5, 0.0, 1e-4)
