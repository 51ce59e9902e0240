"""``segbench report RUNS --out DIR``: a self-contained HTML report of a runs folder.

``DIR/index.html`` (style and script inline, no server, no CDN: it opens from the file system) shows the
results table (click a header to sort by that column), per-class IoU as a heat map across runs, the
difference between the resolved recipes of any two runs, and per run its training curves, its
row-normalised confusion matrix and prediction panels (image | ground truth | prediction) of the same
first report images. The figures are PNG files under ``DIR/runs/<run>/``.
"""
from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path

import attrs
import matplotlib

from segbench.atomic import atomic_write_bytes, atomic_write_text, make_folder
from segbench.data.reading import read_item
from segbench.errors import SegbenchError
from segbench.report.compare import MISSING, RunRow, class_names, collect_runs, display_names
from segbench.report.html_assets import SCRIPT, STYLE
from segbench.report.latency_table import latency_backends, latency_notes, setting_tag, setting_tags

CURVES_SIZE = (760, 300)  # pixels


@attrs.frozen
class RunFigures:
    """A run's row with the report-relative paths of its figures."""

    row: RunRow
    display: str
    curves: str | None
    confusion: str | None
    panels: tuple[str, ...]
    recipe: dict  # flattened resolved recipe
    note: str = ""  # why a figure is missing


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _panels(row: RunRow, folder: Path, relative: str, count: int, *, registries, device) -> tuple[str, ...]:
    """Panels of the report split's first ``count`` images, predicted by the run's chosen checkpoint."""
    from PIL import Image

    from segbench.engine.loggers import PredictionPanel
    from segbench.report.loading import load_run
    from segbench.report.panel_image import panel_image
    from segbench.report.predict import predict_image

    loaded, dataset = load_run(row.run.path, registries, device=device)
    info = loaded.info
    written = []
    for index in range(min(count, len(dataset))):
        image, mask = read_item(dataset, index)
        sample = PredictionPanel(str(dataset.sample_id(index)), image.permute(1, 2, 0).numpy(), mask.numpy(),
                                 predict_image(loaded, image), tuple(info.class_names), tuple(info.palette),
                                 info.ignore_index)
        name = f"panel_{index}.png"
        panel = Image.fromarray(panel_image(sample))
        atomic_write_bytes(folder / name, lambda handle: panel.save(handle, format="png"))
        written.append(f"{relative}/{name}")
    return tuple(written)


def draw_run(row: RunRow, display: str, out: Path, *, images: int, registries, device) -> RunFigures:
    from segbench.report.html_figures import confusion_png
    from segbench.report.plot import plot_runs

    relative = f"runs/{row.name}"
    folder = out / relative
    folder.mkdir(parents=True, exist_ok=True)
    notes = []
    curves = confusion = None
    try:
        plot_runs([row.run.path], folder / "curves.png", size=CURVES_SIZE)
        curves = f"{relative}/curves.png"
    except SegbenchError as exc:
        notes.append(str(exc))
    matrix = row.results.get("confusion_matrix")
    if matrix:
        names = list(row.per_class_iou) or [str(k) for k in range(len(matrix))]
        confusion_png(matrix, names, folder / "confusion.png", title=f"{display}: confusion (row-normalised)")
        confusion = f"{relative}/confusion.png"
    panels: tuple[str, ...] = ()
    if images and row.complete and not (row.run.best.is_file() or row.run.last.is_file()):
        notes.append(f"no prediction panels: {row.run.checkpoints} holds no best.pt or last.pt.")
    elif images and row.complete:
        count = min(images, row.report_images or images)  # the split may hold fewer than --images
        print(f"report: predicting {count} report image(s) with {row.name} ...", file=sys.stderr, flush=True)
        try:
            panels = _panels(row, folder, relative, images, registries=registries, device=device)
        except SegbenchError as exc:
            notes.append(f"no prediction panels: {exc}")
    for note in notes:  # the page shows them too, but a reader of the terminal should not have to look
        print(f"warning: report: {row.name}: {note}", file=sys.stderr)
    return RunFigures(row, display, curves, confusion, panels, row.settings, " ".join(notes))


# ---- the page ---------------------------------------------------------------------------------------

def _number_cell(value, text: str) -> str:
    if value is None:
        return f'<td class="num" data-value="">{MISSING}</td>'
    return f'<td class="num" data-value="{_esc(repr(value))}">{_esc(text)}</td>'


def _pct(value) -> str:
    return MISSING if value is None else f"{100 * value:.2f}"


RESULT_HEADERS = (("run", False), ("model", False), ("strategy", False), ("mIoU %", True),
                  ("pixel accuracy %", True), ("params", True), ("checkpoint MB", True), ("epochs", True),
                  ("iterations", True), ("train time s", True), ("status", False), ("commit", False))


def _latency_cells(row: RunRow, backends: list[str], tags: dict) -> list[str]:
    """Per backend measured by `segbench benchmark`: model-only p50 latency (ms) and end-to-end FPS, tagged with
    their setting where the table's measurements differ in it (as in `segbench compare`)."""
    cells = []
    for backend in backends:
        record = row.latency.get(backend)
        model = record.model_only.p50_ms if record else None
        fps = record.end_to_end.images_per_s if record else None
        tag = setting_tag(record, backend, tags) if record else ""
        cells += [_number_cell(model, f"{model:.2f}{tag}" if model is not None else ""),
                  _number_cell(fps, f"{fps:.1f}{tag}" if fps is not None else "")]
    return cells


def results_table(runs: list[RunFigures]) -> str:
    rows = [item.row for item in runs]
    backends = latency_backends(rows)
    tags = setting_tags(rows, backends)
    headers = (*RESULT_HEADERS[:-2], *((name, True) for b in backends for name in (f"{b} ms (model, p50)",
                                                                                   f"{b} FPS (end to end)")),
               *RESULT_HEADERS[-2:])
    head = "".join(f'<th class="{"num" if numeric else "text"}">{_esc(name)}</th>' for name, numeric in headers)
    body = []
    for item in runs:
        row, results = item.row, item.row.results
        wall = results.get("wall_time_s")
        commit = (results.get("provenance") or {}).get("git_commit")
        dirty = (results.get("provenance") or {}).get("git_dirty")
        cells = [f'<td><a href="#run-{_esc(row.name)}">{_esc(item.display)}</a></td>',
                 f"<td>{_esc(row.model or MISSING)}</td>", f"<td>{_esc(row.strategy or MISSING)}</td>",
                 _number_cell(row.miou, _pct(row.miou)), _number_cell(row.pixel_accuracy, _pct(row.pixel_accuracy)),
                 _number_cell(row.params, f"{row.params:,}" if row.params is not None else ""),
                 _number_cell(row.checkpoint_mb, f"{row.checkpoint_mb:.2f}" if row.checkpoint_mb is not None else ""),
                 _number_cell(row.epochs, str(row.epochs)), _number_cell(row.iterations, str(row.iterations)),
                 _number_cell(wall, f"{wall:.1f}" if wall is not None else ""), *_latency_cells(row, backends, tags),
                 f"<td>{_esc(row.status)}</td>",
                 f"<td>{_esc((commit or MISSING)[:10] + (' (dirty)' if dirty else ''))}</td>"]
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = " ".join(line for line in latency_notes(backends, tags) if line).replace("`", "")
    return (f'<table id="results" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>' + (f"<p>{_esc(notes)}</p>" if notes else ""))


def _heat_colour(value: float) -> str:
    red, green, blue, _ = matplotlib.colormaps["RdYlGn"](0.1 + 0.8 * value)
    return f"#{int(255 * red):02x}{int(255 * green):02x}{int(255 * blue):02x}"


def iou_heat_map(runs: list[RunFigures]) -> str:
    complete = [item for item in runs if item.row.complete and item.row.per_class_iou]
    if not complete:
        return '<p class="missing">no finished run yet</p>'
    head = "<th>class</th>" + "".join(f'<th class="num">{_esc(item.display)}</th>' for item in complete)
    lines = []
    for name in class_names([item.row for item in complete]):
        cells = []
        for item in complete:
            iou = item.row.per_class_iou.get(name)
            if iou is None:
                cells.append(f'<td class="num missing" data-value="">{MISSING}</td>')
            else:
                cells.append(f'<td class="num" data-value="{iou!r}" style="background:{_heat_colour(iou)}">'
                             f"{100 * iou:.1f}</td>")
        lines.append(f"<tr><td>{_esc(name)}</td>{''.join(cells)}</tr>")
    return (f'<table id="iou-heat" class="heat sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table>')


def recipe_diff(runs: list[RunFigures]) -> str:
    if len(runs) < 2:
        return '<p class="missing">one run: nothing to compare</p>'
    options = "".join(f'<option value="{_esc(item.row.name)}">{_esc(item.display)}</option>' for item in runs)
    second = options.replace(f'value="{_esc(runs[1].row.name)}"', f'value="{_esc(runs[1].row.name)}" selected', 1)
    return (f'<p><select id="diff-a">{options}</select> versus <select id="diff-b">{second}</select>'
            ' <span id="diff-summary"></span></p>'
            '<table id="recipe-diff"><thead><tr><th>key</th><th>left</th><th>right</th></tr></thead>'
            '<tbody></tbody></table>')


def _figure(path: str | None, alt: str, css: str = "") -> str:
    if path is None:
        return ""
    return f'<img src="{_esc(path)}" alt="{_esc(alt)}" class="{css}">'


def run_section(item: RunFigures) -> str:
    row = item.row
    parts = [f'<section class="run" id="run-{_esc(row.name)}"><h3>{_esc(item.display)}</h3>',
             f'<p class="meta">{_esc(row.run.path)} · {_esc(row.status)}</p>', '<div class="figures">',
             _figure(item.curves, f"training curves of {item.display}", "curves"),
             _figure(item.confusion, f"confusion matrix of {item.display}", "confusion"), "</div>"]
    if item.panels:
        parts.append('<div class="panels">' + "".join(_figure(p, f"prediction panel of {item.display}", "panel")
                                                       for p in item.panels) + "</div>")
    if item.note:
        parts.append(f'<p class="missing">{_esc(item.note)}</p>')
    parts.append("</section>")
    return "".join(parts)


def render_page(runs: list[RunFigures], *, source: Path) -> str:
    recipes = {item.row.name: item.recipe for item in runs}
    data = json.dumps(recipes, sort_keys=True).replace("</", "<\\/")  # cannot close the script element
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>segbench report: {_esc(source)}</title><style>{STYLE}</style></head><body>",
        f"<h1>segbench report</h1><p class=\"meta\">{len(runs)} run(s) in {_esc(source)} · generated"
        f" {_esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p>",
        "<h2>Results</h2><p class=\"meta\">Click a column header to sort.</p>", results_table(runs),
        "<h2>Per-class IoU (%)</h2>", iou_heat_map(runs),
        "<h2>Recipe differences</h2>", recipe_diff(runs),
        "<h2>Runs</h2>", *(run_section(item) for item in runs),
        f'<script type="application/json" id="recipes-data">{data}</script>',
        f"<script>{SCRIPT}</script></body></html>", ""])


def build_report(runs_dir: Path | None, out: Path, *, images: int = 3, registries=None, device=None,
                 include_smoke: bool = False) -> Path:
    """Write ``out/index.html`` and its figures; returns the page's path."""
    rows = collect_runs(runs_dir, include_smoke=include_smoke, command="report")
    out = Path(out)
    for row in rows:
        if (out / "runs" / row.name).resolve() == row.run.path.resolve():
            raise SegbenchError(f"--out {out}: the report keeps each run's figures in <out>/runs/<run>/, which here"
                                f" is the run folder {row.run.path} itself (its files would be overwritten);"
                                " choose another folder, e.g. --out report")
    make_folder(out, "--out")
    if images and registries is None:
        from segbench.report.loading import default_registries

        registries = default_registries()
    runs = [draw_run(row, display, out, images=images, registries=registries, device=device)
            for row, display in zip(rows, display_names(rows))]
    page = out / "index.html"
    atomic_write_text(page, render_page(runs, source=Path(runs_dir) if runs_dir else Path("runs")))
    return page


def report_command(args, *, registries=None) -> Path:
    if args.images < 0:
        raise SegbenchError(f"--images {args.images}: give a number of report images >= 0")
    page = build_report(args.runs_dir, args.out, images=args.images, registries=registries, device=args.device,
                        include_smoke=args.include_smoke)
    print(page)
    return page
