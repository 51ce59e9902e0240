"""Splitting a model's parameters into the optimizer groups a recipe names."""
from __future__ import annotations

from segbench.errors import ConfigError


def split_param_groups(model, groups: dict) -> list[dict]:
    """One group per named sub-module prefix (``backbone``, ``head.decoder`` ...) plus the rest.

    ``groups`` maps a prefix to a config with optional ``lr`` / ``weight_decay``; unset values fall back
    to the optimizer's own.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    taken: set[str] = set()
    result = []
    for prefix, settings in groups.items():
        params = [p for n, p in named if (n == prefix or n.startswith(prefix + ".")) and n not in taken]
        taken.update(n for n, _ in named if n == prefix or n.startswith(prefix + "."))
        if not params:
            modules = sorted({n.split(".")[0] for n, _ in named})
            raise ConfigError([(f"optimizer.groups.{prefix}",
                                f"no parameters of the model are under {prefix!r}; top-level modules: "
                                f"{', '.join(modules)}")])
        group = {"params": params, "name": prefix}
        for key in ("lr", "weight_decay"):
            value = getattr(settings, key, None)
            if value is not None:
                group[key] = value
        result.append(group)
    rest = [p for n, p in named if n not in taken]
    if rest:
        result.append({"params": rest, "name": "rest"})
    return result
