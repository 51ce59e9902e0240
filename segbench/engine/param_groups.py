"""Splitting a model's parameters into the optimizer groups a recipe names."""
from __future__ import annotations

import attrs

from segbench.errors import ConfigError
from segbench.registry import GroupSettings


def split_param_groups(model, groups: dict, *, path: str = "optimizer") -> list[dict]:
    """One group per named sub-module prefix (``backbone``, ``head.decoder`` ...) plus the rest.

    ``groups`` maps a prefix to a ``segbench.registry.GroupSettings`` (as the optimizer's
    registration declares them); unset values fall back to the optimizer's own. ``path`` is the
    optimizer's recipe section, for errors.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    taken: set[str] = set()
    result = []
    for prefix, settings in groups.items():
        params = [p for n, p in named if (n == prefix or n.startswith(prefix + ".")) and n not in taken]
        taken.update(n for n, _ in named if n == prefix or n.startswith(prefix + "."))
        if not params:
            modules = sorted({n.split(".")[0] for n, _ in named})
            raise ConfigError([(path, f"parameter group {prefix!r}: no parameters of the model are under"
                                      f" {prefix!r}; top-level modules: "
                                f"{', '.join(modules)}")])
        group = {"params": params, "name": prefix}
        for field in attrs.fields(GroupSettings):  # torch's group keys are the field names
            value = getattr(settings, field.name, None)
            if value is not None:
                group[field.name] = value
        result.append(group)
    rest = [p for n, p in named if n not in taken]
    if rest:
        result.append({"params": rest, "name": "rest"})
    return result
