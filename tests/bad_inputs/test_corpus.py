"""The bad-input corpus through the real command line (a subprocess per case).

Every case must exit with status 2, print a message that names the file, key or path at fault and
says what to do, show no traceback, and leave every file that existed before untouched (a completed
run's checkpoints, metrics and results; the case's recipes and data), creating no result or checkpoint.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from tests.bad_inputs.cases import CASES, Case, CaseContext, World
from tests.bad_inputs.harness import (TOY_RECIPE, changes, cli_env, run_cli, snapshot, toy_site,
                                      write_cityscapes_tree)

MIN_CASES = 25  # the default run keeps at least this many (several of each group); `-m slow` runs all
GROUPS = ("recipe", "cli", "data", "checkpoint", "plugin")
FORBIDDEN_NEW_FILES = ("results.json", ".pt", ".tmp", "run.lock")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("bad-inputs-world")
    site = toy_site(root / "site")
    (root / "toy.yaml").write_text(TOY_RECIPE)
    result = run_cli(["run", "toy.yaml", "--runs-dir", "runs"], cwd=root, env=cli_env(site))
    assert result.returncode == 0, result.stderr[-3000:]
    (baseline,) = (root / "runs").iterdir()
    assert (baseline / "results.json").is_file()
    return World(site=site, baseline=baseline, tree=write_cityscapes_tree(root / "cityscapes"))


@attrs.frozen
class Outcome:
    ctx: CaseContext
    returncode: int
    stdout: str
    stderr: str
    before: dict
    after: dict
    seconds: float

    def expected(self, needle: str) -> str:
        for name, value in self.ctx.vars.items():
            needle = needle.replace("{" + name + "}", str(value))
        return needle


def run_case(world: World, case: Case, folder: Path) -> Outcome:
    """Give the case a folder holding toy.yaml and a copy of the completed run, set it up, run it."""
    folder.mkdir(parents=True)
    (folder / "toy.yaml").write_text(TOY_RECIPE)
    shutil.copytree(world.baseline, folder / "runs" / world.baseline.name)
    ctx = CaseContext(world=world, dir=folder)
    args = case.setup(ctx)
    before = snapshot(folder)
    started = time.perf_counter()
    result = run_cli(args, cwd=folder, env=cli_env(*ctx.sites, world.site, **ctx.env), prefix=ctx.prefix)
    seconds = time.perf_counter() - started
    return Outcome(ctx, result.returncode, result.stdout, result.stderr, before, snapshot(folder), seconds)


def _selected_cases(session) -> list[Case]:
    chosen = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("case") if callspec else None
        if isinstance(case, Case) and case not in chosen:
            chosen.append(case)
    return chosen


@pytest.fixture(scope="module")
def outcomes(world, tmp_path_factory, request):
    """All selected cases, started at once on a small pool (each is mostly interpreter start-up)."""
    folder = tmp_path_factory.mktemp("bad-inputs-cases")
    workers = min(4, len(os.sched_getaffinity(0)) + 1)
    pool = ThreadPoolExecutor(max_workers=workers)
    futures = {case.name: pool.submit(run_case, world, case, folder / case.name)
               for case in _selected_cases(request.session) if not (case.skip and case.skip())}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("case", [pytest.param(case, id=f"{case.group}-{case.name}",
                                               marks=[pytest.mark.slow] if case.slow else [])
                                  for case in CASES])
def test_bad_input_is_a_clear_error_that_changes_nothing(case, outcomes):
    reason = case.skip() if case.skip else None
    if reason:
        pytest.skip(reason)
    outcome = outcomes[case.name].result()
    output = outcome.stdout + outcome.stderr
    assert outcome.returncode == 2, output[-3000:]
    assert "Traceback" not in output and 'File "' not in output, output[-3000:]
    assert "error:" in outcome.stderr
    for needle in case.expect:
        assert outcome.expected(needle) in outcome.stderr, f"{outcome.expected(needle)!r} not in:\n{outcome.stderr}"
    delta = changes(outcome.before, outcome.after)
    assert not delta["modified"] and not delta["removed"], delta
    assert not [p for p in delta["added"] if p.endswith(FORBIDDEN_NEW_FILES)], delta
    if case.check is not None:
        case.check(outcome.ctx, outcome)


def test_the_corpus_covers_every_kind_of_input():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} cases"
    default = [case for case in CASES if not case.slow]  # the default test run alone has a full corpus
    assert len(default) >= MIN_CASES, f"only {len(default)} cases outside the slow set"
    assert {case.group for case in default} == set(GROUPS)
    per_group = {group: sum(case.group == group for case in CASES) for group in GROUPS}
    assert set(case.group for case in CASES) == set(GROUPS)
    assert all(count >= 4 for count in per_group.values()), per_group
    print(f"\n{len(CASES)} bad-input cases ({len(default)} in the default run): {per_group}")
