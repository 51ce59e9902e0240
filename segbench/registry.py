"""Registries of named components, built from a plugin manager (never import-time globals)."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import attrs

from segbench.errors import PluginError, UnknownNameError

KINDS = ("models", "datasets", "losses", "schedulers", "strategies", "optimizers", "class_weightings", "loggers")


@attrs.frozen
class Entry:
    """One registered component: its factory, config class and the plugin that registered it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config: type
    plugin: str
    aliases: tuple[str, ...] = ()
    by_default: bool = False  # loggers: used when a recipe lists none

    def default_config(self):
        return self.config()


class Registry:
    """Components of one kind, looked up by name or alias."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._lookup: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        for key in (entry.name, *entry.aliases):
            if key in self._lookup:
                other = self._lookup[key]
                raise PluginError(
                    f"{self.kind} name {key!r} is registered twice: by plugin {other.plugin!r} and by"
                    f" plugin {entry.plugin!r}. Rename one of them, or block one plugin with"
                    " SEGBENCH_BLOCK_PLUGINS=<name>."
                )
        if not attrs.has(entry.config):
            raise PluginError(
                f"plugin {entry.plugin!r} registered {self.kind} {entry.name!r} with config"
                f" {entry.config!r}, which is not an attrs class; declare it with @attrs.frozen."
            )
        self._entries[entry.name] = entry
        for key in (entry.name, *entry.aliases):
            self._lookup[key] = entry

    def get(self, name: str) -> Entry:
        try:
            return self._lookup[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, str(name), self._lookup) from None

    def __contains__(self, name: str) -> bool:
        return name in self._lookup

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def defaults(self) -> list[Entry]:
        """Entries registered with ``by_default=True``."""
        return [entry for entry in self._entries.values() if entry.by_default]


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


def build_registries(plugin_manager) -> Registries:
    """Ask every plugin to register its components and return the filled registries."""
    by_kind = {kind: Registry(kind) for kind in KINDS}
    for kind in KINDS:
        hook = getattr(plugin_manager.hook, f"segbench_register_{kind}")
        for impl in reversed(hook.get_hookimpls()):  # registration order: built-ins first
            plugin_name = plugin_manager.get_name(impl.plugin) or repr(impl.plugin)

            def register(name, factory, *, config, aliases=(), by_default=False, _plugin=plugin_name, _kind=kind):
                by_kind[_kind].add(Entry(_kind, name, factory, config, _plugin, tuple(aliases), bool(by_default)))

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin_name!r} failed while registering {kind}:"
                    f" {type(exc).__name__}: {exc}. Fix or uninstall that plugin, or block it with"
                    f" SEGBENCH_BLOCK_PLUGINS={plugin_name}."
                ) from exc
    return Registries(by_kind, tuple(getattr(plugin_manager, "segbench_distributions", {}).values()))
