"""The ``slurm:`` recipe section: resources and job set-up for one stage.

The section does not change the recipe hash (the same run can execute anywhere). Every value ends up
in a job script, so each is checked here against what ``sbatch`` accepts: a bad value is an error at
emit time, not a job that fails (or pends) hours later.
"""
from __future__ import annotations

import re
import typing
from typing import Any, Sequence

import attrs

from segbench.process import ALLOCATOR_ENV
from segbench.config import in_range, structure_problems
from segbench.errors import ConfigError, RecipeError
from segbench.functional.merge import MergeMarkerError, OverridePathError, set_path
from segbench.recipe.load import parse_override

SECTION = "slurm"

# The allocator settings the `segbench` command gives itself (glibc keeps freed memory instead of re-faulting it
# every step), exported for everything the job runs.
DEFAULT_ENV = dict(ALLOCATOR_ENV)

# Slurm time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:minutes[:seconds]].
_TIME = re.compile(r"^(\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+|\d+-\d+:\d+:\d+|UNLIMITED|INFINITE)$",
                   re.ASCII)
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE | re.ASCII)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An ``#SBATCH`` line is parsed by sbatch, not by a shell: whitespace, quotes, backslashes and ``#`` would
# change how it splits the line, and a control character (a newline) would end the line.
_UNSAFE_TOKEN = re.compile(r"[\s'\"\\#\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _token(instance, attribute, value):
    if value is not None and (value == "" or _UNSAFE_TOKEN.search(value)):
        raise ValueError(f"{value!r} is not a value sbatch can take: write it without spaces, quotes,"
                         " backslashes, '#' or control characters (e.g. gpu, my_account)")


def _time(instance, attribute, value):
    if value is not None and not _TIME.match(value):
        raise ValueError(f"{value!r} is not a Slurm time limit; write minutes ('30'), 'HH:MM:SS'"
                         " ('04:00:00'), 'D-HH:MM:SS' ('1-12:00:00') or 'UNLIMITED'")


def time_limit_seconds(text: str) -> int | None:
    """Seconds in a Slurm time limit (``None``: unlimited). ``text`` must match the accepted formats."""
    if text in ("UNLIMITED", "INFINITE"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:
        hours, minutes, seconds = {1: [0, parts[0], 0], 2: [0, *parts], 3: parts}[len(parts)]
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def _mem(instance, attribute, value):
    if value is not None and not _MEM.match(value):
        raise ValueError(f"{value!r} is not a Slurm memory size; write a number with an optional unit"
                         " K, M, G or T, e.g. '32G' (a number alone is megabytes)")


# sbatch options that segbench writes itself, so an `extra` item giving them again would fight it: the ones
# with a key of this section, and those the job's own workings need.
_OWN_KEYS = {"--partition": "partition", "-p": "partition", "--account": "account", "-A": "account",
             "--qos": "qos", "-q": "qos", "--time": "time", "-t": "time", "--nodes": "nodes", "-N": "nodes",
             "--ntasks-per-node": "ntasks_per_node", "--gpus-per-node": "gpus_per_node",
             "--cpus-per-task": "cpus_per_task", "-c": "cpus_per_task", "--mem": "mem",
             "--constraint": "constraint", "-C": "constraint", "--signal": "signal_lead"}
_MANAGED = {option: why for options, why in (
    (("--array", "-a"), "segbench makes an array of a recipe's seeds itself (`seeds:`, --seeds, --grid)"),
    (("--output", "-o", "--error", "-e"), "segbench sends each job's log to its --out folder (emit-slurm --out)"),
    (("--dependency", "-d"), "segbench chains a fine-tuning stage after its upstream stage itself"),
    (("--chdir", "-D"), "the job runs where emit-slurm was run, where the recipe's relative paths point"),
    (("--job-name", "-J"), "segbench names each job after its run"),
    (("--open-mode",), "a requeued job appends to its log"),
    (("--no-requeue",), "a job past its time limit is requeued to continue from its checkpoint"),
    (("--wrap",), "the job script is segbench's"),
) for option in options}


def _extra_lines(instance, attribute, value):
    for line in value:
        if not line.startswith("-") or _CONTROL.search(line):
            raise ValueError(f"{line!r} is not an sbatch option: each item is one option on one line,"
                             " e.g. '--mail-type=END' or '--exclusive' (it becomes an #SBATCH line)")
        if any(character.isspace() for character in line):
            raise ValueError(f"{line!r}: sbatch reads an #SBATCH line up to its first space, so the rest would be"
                             " lost or refused; write the value without spaces (e.g. --comment=nightly_run)")
        option = line.split("=", 1)[0] if line.startswith("--") else line[:2]  # --time=1:00, -t1:00
        if option in _OWN_KEYS:
            raise ValueError(f"{line!r}: set slurm.{_OWN_KEYS[option]} instead, which segbench checks and writes"
                             f" as {option}")
        if option in _MANAGED:
            raise ValueError(f"{line!r}: {option} is segbench's to set: {_MANAGED[option]}")


def _setup_lines(instance, attribute, value):
    for line in value:
        if _CONTROL.search(line):
            raise ValueError(f"{line!r}: each setup item is one shell line without control characters"
                             " (give several lines as several list items)")


def _env(instance, attribute, value):
    for name, text in value.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name (letters, digits, '_')")
        if text is not None and "\x00" in text:
            raise ValueError(f"the value of {name} contains a NUL character")


def _tuple_of_str(value):
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen
class SlurmConfig:
    """Resources and set-up of one stage's Slurm job (``slurm:`` in a recipe)."""

    partition: str | None = attrs.field(default=None, validator=_token)  # None: the cluster's default
    account: str | None = attrs.field(default=None, validator=_token)
    qos: str | None = attrs.field(default=None, validator=_token)
    # A run longer than this continues in a requeued job from its last checkpoint.
    time: str | None = attrs.field(default="04:00:00", validator=_time)
    nodes: int = attrs.field(default=1, validator=in_range(1, 10_000))
    ntasks_per_node: int | None = attrs.field(default=None, validator=in_range(1, 1024))  # None: one per GPU, or 1
    gpus_per_node: int = attrs.field(default=0, validator=in_range(0, 64))  # 0: a CPU node rejects any GPU request
    cpus_per_task: int | None = attrs.field(default=None, validator=in_range(1, 1024))
    mem: str | None = attrs.field(default=None, validator=_mem)
    constraint: str | None = attrs.field(default=None, validator=_token)
    extra: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str, validator=_extra_lines)
    setup: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str, validator=_setup_lines)
    # Seconds before the time limit at which Slurm sends USR1: enough to finish a step and write last.pt.
    signal_lead: int = attrs.field(default=300, validator=in_range(1, 65535))
    # Exported in the job before the setup lines; ``null`` drops one of the defaults (DEFAULT_ENV).
    env: dict[str, str | None] = attrs.field(factory=dict, validator=_env)

    def __attrs_post_init__(self):
        if self.time is None or not _TIME.match(self.time):
            return  # no limit, or a malformed one that its validator reports
        limit = time_limit_seconds(self.time)
        if limit is not None and limit <= self.signal_lead:
            raise ValueError(f"slurm.signal_lead ({self.signal_lead} s before the time limit) must be shorter than"
                             f" slurm.time ({self.time} = {limit} s): lower signal_lead or raise time")

    @property
    def tasks_per_node(self) -> int:
        if self.ntasks_per_node is not None:
            return self.ntasks_per_node
        return max(1, self.gpus_per_node)

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node

    def environment(self) -> dict[str, str]:
        """Variables the job exports; ``null`` in the recipe drops a default."""
        variables = {**DEFAULT_ENV, **self.env}
        if self.cpus_per_task is not None:
            variables.setdefault("OMP_NUM_THREADS", str(self.cpus_per_task))
        return {name: value for name, value in variables.items() if value is not None}


_TEXT_FIELDS = {f.name for f in attrs.fields(SlurmConfig) if typing.get_type_hints(SlurmConfig)[f.name] in
                (str, str | None)}


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``slurm.*`` overrides (where a job runs) from the rest (what it computes)."""
    slurm, recipe = [], []
    for text in overrides:
        key = text.partition("=")[0].strip()
        (slurm if key == SECTION or key.startswith(SECTION + ".") else recipe).append(text)
    return slurm, recipe


def _parse_slurm_override(text: str) -> tuple[str, Any]:
    key, value = parse_override(text)
    field = key[len(SECTION) + 1:]
    raw = text.partition("=")[2]
    if field in _TEXT_FIELDS and raw.strip() not in ("", "null", "~"):
        # Text as typed: YAML would read slurm.time=10:00:00 as the base-60 number 36000.
        value = raw
    return key, value


def _sexagesimal_hint(section: Any) -> list[tuple[str, str]]:
    problems = []
    if isinstance(section, dict):
        for name in _TEXT_FIELDS:
            value = section.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                hint = ("quote it: time: '30' is 30 minutes, time: '10:00:00' ten hours (YAML reads an unquoted"
                        " 10:00:00 as the base-60 number 36000, so a number here cannot be trusted)"
                        if name == "time" else "quote it to make it text")
                problems.append((f"{SECTION}.{name}", f"expected text, got the number {value}: {hint}"))
    return problems


def slurm_section(recipe_data: dict, overrides: Sequence[str] = ()) -> Any:
    """The recipe's ``slurm:`` section with ``slurm.*`` overrides applied, text fields as typed."""
    tree = {SECTION: recipe_data.get(SECTION) or {}}
    for text in overrides:
        key, value = _parse_slurm_override(text)
        try:
            tree = set_path(tree, key, value)
        except (OverridePathError, MergeMarkerError) as exc:
            raise RecipeError(f"override {text!r}: {exc}.") from None
    return tree[SECTION]


def slurm_config(recipe_data: dict, overrides: Sequence[str] = (), *, files: Sequence[str] = ()) -> SlurmConfig:
    """The stage's ``SlurmConfig``: defaults, then the recipe's ``slurm:`` section, then ``slurm.*`` overrides."""
    section = slurm_section(recipe_data, overrides)
    if isinstance(section, dict) and isinstance(section.get("env"), dict):
        # Environment values are text; MALLOC_MMAP_MAX_: 0 means the text "0".
        section = {**section, "env": {name: str(value) if isinstance(value, (int, float)) and not
                                      isinstance(value, bool) else value
                                      for name, value in section["env"].items()}}
    problems = _sexagesimal_hint(section)
    if problems:
        raise ConfigError(problems, files=files)
    config, problems = structure_problems(SlurmConfig, section, path=SECTION)
    if problems:
        raise ConfigError(problems, files=files)
    return config
