"""Coverage by construction: every field of every registered config class (and of the core sections), and
every numeric option of every subcommand, given hostile values (NaN, infinity, huge, negative, wrong types).

Each must end with exit status 2 and a message that names the key path (or option), without a traceback.
In-process through ``segbench.cli.main``; a sample runs through the installed ``segbench`` command.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries
from tests.bad_inputs.fields import BASE_RECIPE, FieldCase, field_cases

REGISTRIES = build_registries(make_plugin_manager(load_entry_points=False))
CASES = field_cases(REGISTRIES)


def _run(argv, capsys) -> tuple[int, str]:
    from segbench.cli import main

    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def _argv(case: FieldCase, folder: Path) -> list:
    recipe = folder / "hostile.yaml"
    recipe.write_text(yaml.safe_dump(case.recipe, sort_keys=False))
    if case.command == "emit-slurm":
        return ["emit-slurm", recipe, "--out", folder / "jobs", "--runs-dir", folder / "runs"]
    return ["show", recipe]


def _check(status, output, key):
    assert status == 2, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    assert "error:" in output
    assert key in output, f"{key!r} not named in:\n{output[-2000:]}"


def test_the_walk_reaches_every_kind_and_core_section():
    prefixes = {case.id.split(".")[0].split(":")[0].split("=")[0] for case in CASES}
    kinds = {kind for kind in REGISTRIES.by_kind if len(REGISTRIES[kind])}
    assert kinds <= prefixes, kinds - prefixes
    assert {"trainer", "evaluation", "slurm", "seed", "seeds", "transforms"} <= prefixes
    assert len(CASES) > 500, len(CASES)
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def _problems(case: FieldCase) -> str:
    """The validation message for ``case`` without the command line around it ('' if it passes)."""
    from segbench.config import structure_problems
    from segbench.errors import SegbenchError
    from segbench.recipe.load import ResolvedRecipe
    from segbench.recipe.plan import build_plan
    from segbench_jobs.slurm_config import SlurmConfig

    if case.command == "emit-slurm":
        _instance, problems = structure_problems(SlurmConfig, case.recipe["slurm"], path="slurm")
        return "\n".join(f"{where}: {message}" for where, message in problems)
    if "seeds" in case.recipe:  # taken out of the data when the recipe is loaded
        from segbench.recipe.load import check_seeds

        try:
            check_seeds(case.recipe["seeds"], "hostile.yaml")
        except SegbenchError as exc:
            return str(exc)
        return ""
    try:
        build_plan(ResolvedRecipe(path=Path("hostile.yaml"), data=case.recipe, chain=(Path("hostile.yaml"),)),
                   REGISTRIES)
    except SegbenchError as exc:
        return str(exc)
    return ""


def test_every_hostile_field_value_is_refused_naming_its_key():
    """All cases at once, through the validation `segbench run` does (no subprocess, no YAML file)."""
    failures = []
    for case in CASES:
        message = _problems(case)
        if case.key not in message:
            failures.append(f"{case.id}: {message or 'accepted'}")
    assert not failures, f"{len(failures)} of {len(CASES)} hostile values not refused by key:\n" + "\n".join(
        failures[:40])


# Through the command line in-process: one value per field in the default run (rotating through the
# kinds of value), all of them with -m slow.
_BY_FIELD: dict[str, list[FieldCase]] = {}
for _case in CASES:
    _BY_FIELD.setdefault(_case.id.split("=")[0], []).append(_case)
_DEFAULT = {cases[index % len(cases)].id for index, cases in enumerate(_BY_FIELD.values())}


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=[] if case.id in _DEFAULT else
                                               [pytest.mark.slow]) for case in CASES])
def test_a_hostile_field_value_is_refused_by_the_command(case, capsys, tmp_path):
    status, output = _run(_argv(case, tmp_path), capsys)
    _check(status, output, case.key)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "jobs").exists()


# ---- numeric command-line options ---------------------------------------------------------------

HOSTILE_NUMBERS = ["nan", "inf", "-1", "1e40", "99999999999999999999", "abc", "1.5", ""]
HOSTILE_SIZES = ["nan", "0x0", "1x1", "3x5", "-8x16", "64", "64x", "x64", "axb", "1x2x3", "30000x30000",
                 "99999999999999999999x8", "64x64.5", ""]


def _cli_option_cases():
    cases = []
    for option in ("--train", "--val", "--train-extra", "--seed"):
        for value in HOSTILE_NUMBERS:
            cases.append(pytest.param(["synth", "{dir}/city", option, value], option, id=f"synth{option}={value}"))
    for value in HOSTILE_SIZES:
        cases.append(pytest.param(["synth", "{dir}/city", "--size", value], "--size", id=f"synth--size={value}"))
        cases.append(pytest.param(["models", "--size", value], "--size", id=f"models--size={value}"))
    for value in HOSTILE_NUMBERS:
        cases.append(pytest.param(["report", "{dir}", "--out", "{dir}/html", "--images", value], "--images",
                                  id=f"report--images={value}"))
    for command, option in (("benchmark", "--batch"), ("benchmark", "--threads"), ("benchmark", "--repeats"),
                            ("benchmark", "--warmup"), ("export", "--opset")):
        for value in HOSTILE_NUMBERS:
            cases.append(pytest.param([command, "{dir}", option, value], option, id=f"{command}{option}={value}"))
    for command in ("benchmark", "export"):
        for value in HOSTILE_SIZES:
            cases.append(pytest.param([command, "{dir}", "--size", value], "--size", id=f"{command}--size={value}"))
    for option in ("--resamples", "--bootstrap-seed", "--confidence"):
        for value in HOSTILE_NUMBERS:
            cases.append(pytest.param(["compare", "{dir}", option, value], option, id=f"compare{option}={value}"))
    for value in [v for v in HOSTILE_NUMBERS if v] + ["0,0", "1,-2", "0_1", ",".join(map(str, range(1001)))]:
        cases.append(pytest.param(["run", "{dir}/r.yaml", "--seeds", value], "--seeds", id=f"run--seeds={value[:20]}"))
    for value in HOSTILE_NUMBERS:
        cases.append(pytest.param(["show", "{dir}/r.yaml", "--seed", value], "--seed", id=f"show--seed={value}"))
    return cases


@pytest.mark.parametrize("argv, option", _cli_option_cases())
def test_a_hostile_numeric_option_is_refused_naming_it(argv, option, capsys, tmp_path):
    argv = [word.replace("{dir}", str(tmp_path)) for word in argv]
    status, output = _run(argv, capsys)
    _check(status, output, option)
    assert not (tmp_path / "city").exists()


def test_every_numeric_option_of_every_subcommand_is_covered():
    """A new numeric option must be added to the cases above."""
    from segbench.cli import build_parser

    covered = {("synth", "--train"), ("synth", "--val"), ("synth", "--train-extra"), ("synth", "--seed"),
               ("synth", "--size"), ("models", "--size"), ("compare", "--resamples"), ("compare", "--bootstrap-seed"),
               ("compare", "--confidence"), ("report", "--images"), ("benchmark", "--batch"),
               ("benchmark", "--threads"), ("benchmark", "--repeats"), ("benchmark", "--warmup"), ("benchmark", "--size"),
               ("export", "--opset"), ("export", "--size"), ("run", "--seeds"), ("show", "--seed"), ("emit-slurm", "--seeds")}
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    numeric = set()
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.type in (int, float) or "size" in action.dest or "seed" in action.dest or \
                    getattr(action.type, "numeric", False):
                numeric.add((command, max(action.option_strings, key=len)))
    assert numeric <= covered, numeric - covered


# ---- through the installed command --------------------------------------------------------------

def _installed_segbench() -> str:
    found = Path(sys.executable).parent / "segbench"
    return str(found) if found.exists() else shutil.which("segbench")


SAMPLE = [case for case in CASES if case.id in {
    "models:unet.width=nan", "optimizers:sgd.lr=1e+300", "optimizers:adam.betas=[inf, inf]",
    "datasets:cityscapes.subset.cities='aachen'", "transforms:normalize.std=[nan, nan, nan]",
    "trainer.batch_size=1000000000000", "seed=-1", "slurm.nodes=inf", "schedulers:poly.power='6e-5'",
}]


_INSTALLED_DEFAULT = {"optimizers:sgd.lr=1e+300"}  # the rest of the sample runs with `pytest -m slow`


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=[] if case.id in _INSTALLED_DEFAULT else
                                               [pytest.mark.slow]) for case in SAMPLE])
def test_hostile_values_through_the_installed_command(case, tmp_path):
    argv = _argv(case, tmp_path)
    result = subprocess.run([_installed_segbench(), *map(str, argv)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    _check(result.returncode, result.stdout + result.stderr, case.key)


def test_the_installed_sample_is_complete():
    assert len(SAMPLE) == 9, sorted(case.id for case in SAMPLE)


def test_the_base_recipe_is_valid(capsys, tmp_path):
    recipe = tmp_path / "base.yaml"
    recipe.write_text(yaml.safe_dump(BASE_RECIPE))
    status, output = _run(["show", recipe], capsys)
    assert status == 0, output
