"""The built-in optimizers: fused where torch's fused kernels are exact, with torch's documented updates."""
import pytest
import torch

from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

OPTIMIZERS = build_registries(make_plugin_manager(load_entry_points=False)).optimizers
TORCH_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def parameters(dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(16, 3, 3, 3), (16,), (24, 16, 3, 3), (19, 24, 1, 1), (19,)]
    return [torch.nn.Parameter(torch.randn(shape, generator=generator).to(dtype)) for shape in shapes]


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fp32_parameters_get_the_fused_step_with_the_same_updates_as_torchs_loop(name):
    entry = OPTIMIZERS.get(name)
    config = entry.config(lr=0.05, weight_decay=1e-4, **({"nesterov": True} if name == "sgd" else {}))
    ours, theirs = parameters(), parameters()
    optimizer = entry.factory(config, param_groups=[{"params": ours}])
    settings = {key: value for key, value in optimizer.defaults.items() if key in
                ("lr", "momentum", "nesterov", "weight_decay", "betas", "eps", "dampening")}
    reference = TORCH_CLASSES[name](theirs, foreach=False, **settings)
    assert optimizer.defaults["fused"]
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        optimizer.step()
        reference.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_low_precision_parameters_get_torchs_loop():
    entry = OPTIMIZERS.get("sgd")
    optimizer = entry.factory(entry.config(), param_groups=[{"params": parameters(torch.bfloat16)}])
    assert not optimizer.defaults["fused"]
