"""``segbench report``: a self-contained HTML folder, checked as written and in a real (headless) Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from segbench.engine.rundir import RunDir
from segbench.report.html import build_report
from tests import engine_plugin
from tests.browser import Browser, find_chromium
from tests.test_evaluate_cli import train_toy

PANELS = 2


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two finished toy runs (different lr and length) and an unfinished copy, reported with 2 panels each."""
    folder = tmp_path_factory.mktemp("html")
    registries = engine_plugin.registries()
    first = train_toy(folder, registries, engine_plugin.RECIPE.replace("epochs: 3", "epochs: 2"))
    train_toy(folder, registries, engine_plugin.RECIPE.replace("epochs: 3", "epochs: 1").replace("lr: 0.1", "lr: 0.05"),
              name="short.yaml")
    unfinished = RunDir(first.path.parent / "unfinished-0123abcd")
    shutil.copytree(first.path, unfinished.path)
    unfinished.results.unlink()
    page = build_report(folder / "runs", folder / "report", images=PANELS, registries=registries)
    return page, folder


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids, self.rows = [], [], set(), {}
        self._table = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self._table = attrs.get("id")
        if tag == "tr" and self._table:
            self.rows[self._table] = self.rows.get(self._table, 0) + 1
        if tag == "img":
            self.images.append(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])


def test_report_is_one_folder_with_every_figure_and_no_outside_reference(report):
    page, folder = report
    text = page.read_text()
    parsed = _Page()
    parsed.feed(text)
    assert not [link for link in parsed.links if re.match(r"^(https?:)?//", link)], "the page must work offline"
    assert "<script src" not in text and "<link" not in text
    assert parsed.rows["results"] == 1 + 3  # header and three runs
    assert parsed.rows["iou-heat"] == 1 + 3  # header and three classes
    classes = {img["class"] for img in parsed.images}
    assert classes == {"curves", "confusion", "panel"}
    for img in parsed.images:
        path = page.parent / img["src"]
        assert path.is_file() and not Path(img["src"]).is_absolute(), img["src"]
        with Image.open(path) as image:
            assert image.width > 0
    assert sum(img["class"] == "panel" for img in parsed.images) == 2 * PANELS  # the two finished runs
    assert sum(img["class"] == "curves" for img in parsed.images) == 3  # the unfinished run has curves too
    recipes = json.loads(re.search(r'id="recipes-data">(.*?)</script>', text, re.S).group(1))
    assert len(recipes) == 3 and {r["optimizer.lr"] for r in recipes.values()} == {0.1, 0.05}


def test_a_run_whose_model_plugin_is_missing_is_reported_on_the_terminal_and_the_page(report, tmp_path, capsys):
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    _, folder = report
    without_the_model = build_registries(make_plugin_manager(load_entry_points=False))
    page = build_report(folder / "runs", tmp_path / "report", images=1, registries=without_the_model)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: report: ")]
    assert len(warnings) == 2 and all("no prediction panels: " in line for line in warnings)
    assert err.count("unknown models 'nobn'") == 2
    assert page.read_text().count("no prediction panels: ") == 2


def test_a_report_folder_that_would_put_figures_into_the_run_folders_is_refused(report, cli, monkeypatch):
    _, folder = report
    before = {path: path.stat().st_mtime_ns for path in (folder / "runs").rglob("*")}
    monkeypatch.chdir(folder)  # --out . : <out>/runs/<run>/ is each run folder itself
    status, _, err = cli("report", "runs", "--out", ".")
    assert status == 2 and "is the run folder" in err and "choose another folder" in err
    assert {path: path.stat().st_mtime_ns for path in (folder / "runs").rglob("*")} == before


def test_report_command_refuses_a_folder_without_runs(cli, tmp_path):
    status, _, err = cli("report", tmp_path, "--out", tmp_path / "report")
    assert status == 2 and "no runs in" in err
    assert not (tmp_path / "report").exists()


SCREENSHOT_DIR_ENV = "SEGBENCH_TEST_ARTIFACTS"


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium); .ci/run installs it")
def test_report_in_headless_chromium_sorts_loads_images_and_diffs_recipes(report, tmp_path):
    page, _ = report
    with Browser() as browser:
        browser.open(page.as_uri())
        assert browser.evaluate("document.querySelectorAll('#results tbody tr').length") == 3
        broken = browser.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
        assert broken == []
        assert browser.evaluate("document.querySelectorAll('img.curves').length") == 3
        assert browser.evaluate("document.querySelectorAll('img.panel').length") == 2 * PANELS

        column = browser.evaluate("Array.from(document.querySelectorAll('#results th')).findIndex("
                                  "th => th.textContent.startsWith('mIoU'))")
        values = (f"Array.from(document.querySelectorAll('#results tbody tr')).map("
                  f"r => r.cells[{column}].dataset.value)")
        click = f"document.querySelectorAll('#results th')[{column}].click()"
        browser.evaluate(click)
        ascending = browser.evaluate(values)
        numbers = [float(v) for v in ascending if v]
        assert numbers == sorted(numbers) and ascending[-1] == "", ascending  # the unfinished run last
        browser.evaluate(click)
        descending = browser.evaluate(values)
        numbers = [float(v) for v in descending if v]
        assert numbers == sorted(numbers, reverse=True) and descending[-1] == "", descending
        names = "Array.from(document.querySelectorAll('#results tbody tr')).map(r => r.cells[0].textContent)"
        browser.evaluate("document.querySelectorAll('#results th')[0].click()")
        assert browser.evaluate(names) == sorted(browser.evaluate(names), key=str.lower)

        differing = browser.evaluate("Array.from(document.querySelectorAll('#recipe-diff tbody tr'))"
                                     ".map(r => r.cells[0].textContent)")
        assert differing == ["optimizer.lr", "trainer.epochs"]
        browser.evaluate("const a = document.getElementById('diff-a'), b = document.getElementById('diff-b');"
                         "b.value = a.value; b.dispatchEvent(new Event('change'))")
        assert browser.evaluate("document.querySelectorAll('#recipe-diff tbody tr').length") == 0
        assert browser.evaluate("document.getElementById('diff-summary').textContent") == "the same run on both sides"

        folder = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        browser.evaluate("document.getElementById('diff-b').selectedIndex = 1;"
                         "document.getElementById('diff-b').dispatchEvent(new Event('change'))")
        shot = browser.screenshot(folder / "report.png")
    with Image.open(shot) as image:
        assert image.width >= 800 and image.height >= 1000
    print(f"report screenshot: {shot}")
