"""The plugin manager: built-in plugins first, then the ``segbench`` entry-point group."""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from importlib.metadata import entry_points
from typing import Iterable

import attrs
import pluggy

from segbench import hookspecs
from segbench.errors import PluginError

ENTRY_POINT_GROUP = "segbench"
DISABLE_AUTOLOAD_ENV = "SEGBENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "SEGBENCH_BLOCK_PLUGINS"

BUILTIN_PLUGINS = (
    "segbench_plugins.losses",
    "segbench_plugins.optimizers",
    "segbench_plugins.schedulers",
    "segbench_plugins.strategies",
    "segbench_plugins.class_weightings",
    "segbench_plugins.transforms",
    "segbench_plugins.unet",
    "segbench_plugins.deeplab",
    "segbench_plugins.lraspp",
    "segbench_plugins.fast_scnn",
    "segbench_plugins.enet",
    "segbench_plugins.cityscapes",
    "segbench_plugins.synthetic_city",
    "segbench_plugins.loggers",
    "segbench_plugins.loggers_tensorboard",
)


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str
    version: str


def _blocked_names(environ) -> set[str]:
    return {n.strip() for n in environ.get(BLOCK_ENV, "").split(",") if n.strip()}


def make_plugin_manager(
    *, builtins: Iterable[str] = BUILTIN_PLUGINS, load_entry_points: bool | None = None, environ=None,
) -> pluggy.PluginManager:
    """Build a plugin manager with the built-in plugins and (unless disabled) entry-point plugins.

    ``SEGBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points; ``SEGBENCH_BLOCK_PLUGINS=a,b``
    skips the named plugins (built-in module names or entry-point names). An entry-point plugin that cannot be
    loaded is left out; its ``PluginError`` is raised by ``build_registries`` with the problems found there, so
    that one message names every broken plugin.
    """
    environ = os.environ if environ is None else environ
    blocked = _blocked_names(environ)
    pm = pluggy.PluginManager("segbench")
    pm.add_hookspecs(hookspecs)
    pm.segbench_distributions = {}
    pm.segbench_blocked = {}  # plugin name -> its module (built-ins) or None (entry points are not imported)
    for module_name in builtins:
        if module_name in blocked or module_name.rsplit(".", 1)[-1] in blocked:
            pm.segbench_blocked[module_name] = importlib.import_module(module_name)
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
        pm.segbench_distributions[module_name] = PluginInfo(module_name, "segbench (built-in)", _version())
    if load_entry_points is None:
        load_entry_points = environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    installed = entry_points(group=ENTRY_POINT_GROUP)
    _warn_unknown_blocked(blocked, [*builtins, *(m.rsplit(".", 1)[-1] for m in builtins),
                                    *(ep.name for ep in installed)])
    failed: list[PluginError] = []
    if load_entry_points:
        for ep in installed:
            if ep.name in blocked:
                pm.segbench_blocked[ep.name] = None
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            try:
                _register_entry_point(pm, ep, dist, version)
            except PluginError as exc:
                failed.append(exc)
    pm.segbench_load_failures = failed
    return pm


def _register_entry_point(pm, ep, dist: str, version: str) -> None:
    try:
        plugin = ep.load()
    except (Exception, SystemExit) as exc:  # a module that exits while imported (argparse at import) ends no command
        problem = f"it called sys.exit({exc.code!r}) while imported" if isinstance(exc, SystemExit) else \
            f"{type(exc).__name__}: {exc}"
        raise PluginError(
            f"could not load plugin {ep.name!r} (entry point {ep.value!r} in group"
            f" {ENTRY_POINT_GROUP!r}) from distribution {dist} {version}:"
            f" {problem}. Reinstall or uninstall {dist}, or skip it with"
            f" {BLOCK_ENV}={ep.name}."
        ) from exc
    if pm.is_registered(plugin):
        return
    try:
        pm.register(plugin, name=ep.name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {ep.name!r} (entry point {ep.value!r}) from distribution {dist} {version}:"
            f" {_signature_problem(plugin) or ' '.join(str(exc).split())}. Fix the plugin, or skip it"
            f" with {BLOCK_ENV}={ep.name}."
        ) from None
    pm.segbench_distributions[ep.name] = PluginInfo(ep.name, dist, version)


_WARNED_BLOCKED: set[str] = set()


def _warn_unknown_blocked(blocked: set[str], known: list[str]) -> None:
    """A name in SEGBENCH_BLOCK_PLUGINS that is no plugin blocks nothing: say so (once per process), since a
    misspelled name otherwise leaves the plugin it meant active without a word."""
    for name in sorted(blocked - set(known) - _WARNED_BLOCKED):
        _WARNED_BLOCKED.add(name)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; plugins: {', '.join(sorted(set(known)))}"
        print(f"segbench: warning: {BLOCK_ENV} names {name!r}, which is not an installed plugin, so it blocks"
              f" nothing{hint}", file=sys.stderr)


def plugin_infos(pm) -> list[PluginInfo]:
    return list(pm.segbench_distributions.values())


def distribution_of(pm, plugin_name: str) -> str:
    """``name version`` of the distribution that installed a plugin (empty when unknown)."""
    info = getattr(pm, "segbench_distributions", {}).get(plugin_name)
    return f"{info.distribution} {info.version}" if info is not None else ""


def _known_hooks() -> list[str]:
    return [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("segbench_")]


def _signature_problem(plugin) -> str | None:
    """Which of ``plugin``'s hooks declares parameters its specification does not (pluggy refuses those)."""
    for name in _known_hooks():
        function = getattr(plugin, name, None)
        if not callable(function):
            continue
        wanted = list(inspect.signature(getattr(hookspecs, name)).parameters)
        declared = list(inspect.signature(function).parameters)
        extra = [parameter for parameter in declared if parameter not in wanted and parameter != "self"]
        if extra:
            return (f"its hook {name}({', '.join(declared)}) declares {', '.join(map(repr, extra))}, which segbench"
                    f" does not pass; define it as {name}({', '.join(wanted)})")
    return None


def hook_name_problems(pm) -> dict[str, PluginError]:
    """By plugin name, the first ``segbench_*`` function that is not a hook (a misspelled hook is otherwise
    silently ignored) or hook-named function that lacks ``@segbench.hookimpl``."""
    known = _known_hooks()
    problems: dict[str, PluginError] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        try:
            _check_plugin_hook_names(pm, name, plugin, known)
        except PluginError as exc:
            problems[name] = exc
    if not problems:
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{exc}. The hooks are: {', '.join(known)}.") from None
    return problems


def _check_plugin_hook_names(pm, name: str, plugin, known: list[str]) -> None:
    """Raise a ``PluginError`` for the first function of ``plugin`` that looks like a hook but is none."""
    where = f"plugin {name!r}"
    dist = distribution_of(pm, name)
    if dist:
        where += f" (distribution {dist})"
    for attribute in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attribute) if not attribute.startswith("segbench_") else None
        # a @hookimpl(specname="segbench_register_models") under another name is a hook too
        if opts is not None and attribute not in known and opts.get("specname") not in known:
            close = difflib.get_close_matches(attribute, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise PluginError(f"{where} marks {attribute!r} with @hookimpl, but segbench has no such hook{hint}"
                              f" The hooks are: {', '.join(known)}.")
        if not attribute.startswith("segbench_") or not callable(getattr(plugin, attribute, None)) \
                or inspect.ismodule(getattr(plugin, attribute, None)):
            continue
        if attribute not in known:
            close = difflib.get_close_matches(attribute, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise PluginError(f"{where} defines {attribute!r}, which is not a segbench hook{hint} The hooks are:"
                              f" {', '.join(known)}. Rename it (functions named segbench_* are reserved for"
                              " hooks).")
        if pm.parse_hookimpl_opts(plugin, attribute) is None:
            raise PluginError(f"{where} defines {attribute!r} without the @segbench.hookimpl decorator, so"
                              " segbench would never call it; decorate it with @hookimpl"
                              " (from segbench import hookimpl).")


def _version() -> str:
    from segbench import __version__

    return __version__
