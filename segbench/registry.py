"""Registries of named components, built from a plugin manager (never import-time globals)."""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Iterator, Mapping

import attrs

from segbench.config_types import unsupported_field
from segbench.errors import BlockedNameError, PluginError, UnknownNameError

BLOCK_ENV = "SEGBENCH_BLOCK_PLUGINS"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

KINDS = ("models", "datasets", "losses", "schedulers", "strategies", "optimizers", "class_weightings",
         "transforms", "loggers")


def singular(kind: str) -> str:
    """``losses`` -> ``loss``, ``strategies`` -> ``strategy``, ``class_weightings`` -> ``class weighting``."""
    noun = kind.replace("_", " ")
    return noun[:-3] + "y" if noun.endswith("ies") else noun[:-2] if noun.endswith("sses") else noun[:-1]


# What a registration may declare beyond ``smoke`` and ``aliases``, per kind (see segbench.hookspecs).
KIND_OPTIONS = {
    "models": ("for_checkpoint",),
    "optimizers": ("param_groups",),
    "transforms": ("final",),
    "schedulers": ("default",),
    "strategies": ("default",),
    "loggers": ("default",),  # several may be: a recipe without a `logging:` list uses all of them
}

# Keys of a dataset's config that the core itself reads, as the datasets hook documents:
# `evaluate --split NAME` scores the whole split NAME, `compare` shows them.
SPLIT_KEY, SUBSET_KEY = "split", "subset"


@attrs.frozen
class Substitute:
    """What a smoke variant returns to use another registered component of the same kind instead
    (a dataset read from disk replaced by a generated one): its ``name`` and its ``config``, an instance of
    that component's config class or a mapping of its settings as a recipe would write them
    (``Substitute("synthetic_city", {"train": 8, "val": 4})``)."""

    name: str
    config: Any


@attrs.frozen
class NoSettings:
    """The config of a component registered without ``config=``: its recipe section holds its name alone."""


@attrs.frozen
class GroupSettings:
    """One optimizer parameter group as an optimizer's ``param_groups`` declaration gives it:
    ``None`` leaves a value at the optimizer's own."""

    lr: float | None = None
    weight_decay: float | None = None


@attrs.frozen
class Entry:
    """One registered component: its factory, config class, the plugin that registered it, and what
    the registration declares beyond the factory (see ``segbench.hookspecs``)."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config: type
    plugin: str
    aliases: tuple[str, ...] = ()
    smoke: Callable[[Any], Any] | None = None
    for_checkpoint: Callable[[Any], Any] | None = None
    param_groups: Callable[[Any], Mapping[str, GroupSettings]] | None = None
    final: bool = False
    default: bool = False
    distribution: str = ""

    def default_config(self):
        return self.config()

    @property
    def noun(self) -> str:
        """The kind in the singular, for messages: ``loss``, ``class weighting``."""
        return singular(self.kind)

    @property
    def builtin(self) -> bool:
        return self.distribution.startswith("segbench (built-in)")

    @property
    def origin(self) -> str:
        """``plugin 'x' (distribution y 1.0)``: who to ask when the component misbehaves."""
        return f"plugin {self.plugin!r}" + (f" (distribution {self.distribution})" if self.distribution else "")

    def smoke_config(self, config):
        """The config (or :class:`Substitute`) of this component's ``--smoke`` variant."""
        return config if self.smoke is None else self.smoke(config)

    def checkpoint_config(self, config):
        """The config to build with when a checkpoint supplies every weight."""
        if self.for_checkpoint is None:
            return config
        what = f"the for_checkpoint function of {self.noun} {self.name!r} ({self.origin})"
        try:
            result = self.for_checkpoint(config)
        except Exception as exc:
            raise PluginError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, self.config):
            raise PluginError(f"{what} returned {result!r}; it must return a {self.config.__name__} (the config to"
                              " build with when a checkpoint supplies every weight)")
        return result

    def groups(self, config) -> dict[str, GroupSettings]:
        """The parameter groups the optimizer ``config`` asks for, by sub-module prefix."""
        if self.param_groups is None:
            return {}
        groups = self.param_groups(config)
        if not isinstance(groups, Mapping) or not all(
                isinstance(k, str) and isinstance(v, GroupSettings) for k, v in groups.items()):
            raise PluginError(f"{self.kind} {self.name!r} ({self.origin}): its param_groups declaration returned"
                              f" {groups!r}; it must return a mapping of sub-module prefix to"
                              " segbench.registry.GroupSettings.")
        return dict(groups)


def _default_problem(config: type) -> str | None:
    """Why ``config``'s defaults fail its own validators (``None`` when they pass or cannot be checked alone)."""
    fields = attrs.fields(config)
    if all(field.default is not attrs.NOTHING for field in fields):
        from segbench.config import structure_config, unstructure_plain
        from segbench.errors import ConfigError

        try:
            defaults = config()
        except (ValueError, TypeError) as exc:
            return f"{config.__qualname__}() raises {type(exc).__name__}: {exc}"
        try:  # a default of another type than its field's (channels: int = "8") is used as is, unchecked
            structure_config(config, unstructure_plain(defaults), path="")
        except ConfigError as exc:
            return "; ".join(f"field {key.lstrip('.')!r}: {message}" for key, message in exc.problems)
        except Exception:  # a field type the recipe checker does not know: checked when a recipe sets it
            return None
        return None
    for field in fields:  # some keys are required: check each default against its own field's validator
        default = field.default
        if default is attrs.NOTHING or field.validator is None or field.converter is not None:
            continue
        if isinstance(default, attrs.Factory):
            if default.takes_self:
                continue
            default = default.factory()
        try:
            field.validator(None, field, default)
        except (ValueError, TypeError) as exc:
            return f"field {field.name!r} defaults to {default!r}: {exc}"
        except Exception:  # a validator that needs the other fields: checked when a recipe is structured
            continue
    return None


def _as_alias(entry: Entry, key: str) -> str:
    return "" if key == entry.name else f" (as an alias of {entry.name!r})"


class Registry:
    """Components of one kind, looked up by name or alias."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._lookup: dict[str, Entry] = {}
        self.blocked: dict[str, str] = {}  # name -> the blocked plugin that provides it
        self.blocked_plugins: tuple[str, ...] = ()  # every plugin SEGBENCH_BLOCK_PLUGINS blocks

    def add(self, entry: Entry) -> None:
        for key in (entry.name, *entry.aliases):
            if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
                raise PluginError(f"{entry.origin} registered a {singular(self.kind)} named {key!r}; a name (or alias)"
                                  " is what recipes write after `name:` and what file names are made of: letters,"
                                  " digits, '_', '-', '+' and '.', not starting with '-', '+' or '.'. Rename it.")
        for key in (entry.name, *entry.aliases):
            if key in self._lookup:
                other = self._lookup[key]
                # suggest blocking the installed package's plugin before segbench's own
                first, second = sorted((entry, other), key=lambda e: e.builtin)
                first, second = first.plugin, second.plugin
                raise PluginError(
                    f"{self.kind} name {key!r} is registered twice: by {other.origin}{_as_alias(other, key)} and by"
                    f" {entry.origin}{_as_alias(entry, key)}."
                    f" Rename one of them, or block one plugin with SEGBENCH_BLOCK_PLUGINS={first}"
                    f" (or ={second})."
                )
        who = f"{entry.origin} registered {self.kind} {entry.name!r}"
        if not callable(entry.factory):
            raise PluginError(f"{who} with factory {entry.factory!r}, which is not callable; pass the function"
                              " (or class) that builds the component.")
        if not attrs.has(entry.config):
            raise PluginError(f"{who} with config {entry.config!r}, which is not an attrs class; declare it with"
                              " @attrs.frozen.")
        for label, value in (("smoke", entry.smoke), ("for_checkpoint", entry.for_checkpoint),
                             ("param_groups", entry.param_groups)):
            if value is not None and not callable(value):
                raise PluginError(f"{who} with {label}={value!r}; it must be a function taking the component's"
                                  " config.")
        if any(field.name == "name" for field in attrs.fields(entry.config)):
            raise PluginError(f"{who} with config class {entry.config.__qualname__}, which has a field called"
                              " 'name'; in a recipe `name:` chooses the component, so that field could never be"
                              " set. Rename the field (e.g. run_name).")
        problem = unsupported_field(entry.config)
        if problem is not None:
            raise PluginError(f"{who} with config class {entry.config.__qualname__}: {problem}.")
        problem = _default_problem(entry.config)
        if problem is not None:
            raise PluginError(f"{who} with config class {entry.config.__qualname__}, whose defaults are invalid:"
                              f" {problem}. A recipe that leaves the key out would be refused for a value it never"
                              " wrote: fix the default in the plugin (or give the field no default, so recipes"
                              " must set it).")
        self._entries[entry.name] = entry
        for key in (entry.name, *entry.aliases):
            self._lookup[key] = entry

    def get(self, name: str) -> Entry:
        try:
            return self._lookup[name]
        except (KeyError, TypeError):
            pass
        if isinstance(name, str) and name in self.blocked:
            plugin = self.blocked[name]
            listed = [item.strip() for item in os.environ.get(BLOCK_ENV, "").split(",")]
            given = next((item for item in listed if item in (plugin, plugin.rsplit(".", 1)[-1])),
                         plugin.rsplit(".", 1)[-1])  # as the variable names it: short or full
            raise BlockedNameError(
                f"{self.kind} {name!r} comes from plugin {plugin!r}, which is blocked by SEGBENCH_BLOCK_PLUGINS"
                f"={os.environ.get(BLOCK_ENV, '')!r}. Remove {given!r} from SEGBENCH_BLOCK_PLUGINS to use it,"
                f" or choose another {singular(self.kind)}.")
        unknown = UnknownNameError(self.kind, str(name), self._lookup)
        unknown.args = (f"{unknown}{self.blocked_note()}",)
        raise unknown

    def blocked_note(self) -> str:
        """For an unknown name: the blocked plugins whose components are not known, which may provide it."""
        unimported = [plugin for plugin in self.blocked_plugins if plugin not in self.blocked.values()]
        if not unimported:
            return ""
        return (f" SEGBENCH_BLOCK_PLUGINS blocks plugin(s) {', '.join(unimported)}, which may provide it: remove"
                " them from SEGBENCH_BLOCK_PLUGINS to use them.")

    def __contains__(self, name: str) -> bool:
        return name in self._lookup

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def in_order(self) -> list[Entry]:
        """Entries in registration order (built-ins first)."""
        return list(self._entries.values())

    def defaults(self) -> list[Entry]:
        """Entries registered with ``default=True``, in registration order."""
        return [entry for entry in self._entries.values() if entry.default]


@attrs.frozen
class Registries:
    """All component registries, one per kind."""

    by_kind: dict[str, Registry]
    plugins: tuple = ()  # segbench.plugins.PluginInfo of every plugin the manager loaded

    def __getattr__(self, kind: str) -> Registry:
        try:
            return self.by_kind[kind]
        except KeyError:
            raise AttributeError(kind) from None

    def __getitem__(self, kind: str) -> Registry:
        return self.by_kind[kind]


def _make_register(registry: Registry, plugin: str, distribution: str):
    allowed = KIND_OPTIONS.get(registry.kind, ())

    def register(name, factory, *, config=NoSettings, aliases=(), smoke=None, **options):
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            valid = ", ".join(("config", "aliases", "smoke", *allowed))
            origin = f"plugin {plugin!r}" + (f" (distribution {distribution})" if distribution else "")
            raise PluginError(f"{origin} registered {registry.kind} {name!r} with unknown keyword(s)"
                              f" {', '.join(unknown)}; a {singular(registry.kind)} registration takes: {valid}.")
        if isinstance(aliases, str):
            aliases = (aliases,)
        registry.add(Entry(registry.kind, name, factory, config, plugin, tuple(aliases), smoke=smoke,
                           distribution=distribution, **options))

    return register


def build_registries(plugin_manager) -> Registries:
    """Ask every plugin to register its components and return the filled registries."""
    from segbench.plugins import distribution_of, hook_name_problems

    by_kind = {kind: Registry(kind) for kind in KINDS}
    failed = hook_name_problems(plugin_manager)  # by plugin name; every broken plugin is named at the end
    blocked = getattr(plugin_manager, "segbench_blocked", {})
    for kind in KINDS:
        by_kind[kind].blocked_plugins = tuple(blocked)
        for plugin_name, module in blocked.items():  # what blocked built-ins would register, for the message
            hook = getattr(module, f"segbench_register_{kind}", None)
            if hook is not None:
                hook(register=lambda name, *_args, _plugin=plugin_name, _kind=kind, aliases=(), **_kwargs:
                     by_kind[_kind].blocked.update(dict.fromkeys((name, *aliases), _plugin)))
        hook = getattr(plugin_manager.hook, f"segbench_register_{kind}")
        for impl in hook.get_hookimpls():  # registration order (pluggy calls hooks in reverse): built-ins first
            plugin_name = plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
            if plugin_name in failed:  # one problem per plugin: the rest of a broken plugin says little more
                continue
            register = _make_register(by_kind[kind], plugin_name, distribution_of(plugin_manager, plugin_name))
            try:
                impl.function(register=register)
            except PluginError as exc:
                failed[plugin_name] = exc
            except Exception as exc:
                dist = distribution_of(plugin_manager, plugin_name)
                error = PluginError(
                    f"plugin {plugin_name!r}" + (f" (distribution {dist})" if dist else "")
                    + f" failed while registering {kind}:"
                    f" {type(exc).__name__}: {exc}. Fix or uninstall that plugin, or block it with"
                    f" SEGBENCH_BLOCK_PLUGINS={plugin_name}."
                )
                error.__cause__ = exc  # --debug shows the plugin's own traceback
                failed[plugin_name] = error
    failed_anywhere = [*getattr(plugin_manager, "segbench_load_failures", []), *failed.values()]
    if failed_anywhere:
        raise PluginError.of_all(failed_anywhere)
    return Registries(by_kind, tuple(getattr(plugin_manager, "segbench_distributions", {}).values()))
