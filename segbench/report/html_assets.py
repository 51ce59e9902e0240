"""The HTML report's style sheet and script, inlined into the page (no server, no CDN: it opens from disk)."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; white-space: nowrap; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
table.heat td.num { min-width: 3.5em; }
.run { margin: 1.2em 0 2em; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.figures img { max-width: 100%; border: 1px solid #eee; }
img.panel { min-width: 240px; max-width: 100%; height: auto; image-rendering: pixelated; }
.panels { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.missing { color: #999; font-style: italic; }
#recipe-diff td { font-family: ui-monospace, monospace; }
.same { color: #080; }
"""

SCRIPT = r"""
function cellValue(row, index, numeric) {
  const cell = row.cells[index];
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  if (!numeric) return raw.toLowerCase();
  const value = parseFloat(raw);
  return isNaN(value) ? null : value;
}
function sortTable(table, index) {
  const th = table.tHead.rows[0].cells[index];
  const numeric = th.classList.contains('num');
  const order = th.dataset.order === 'asc' ? 'desc' : 'asc';
  for (const other of table.tHead.rows[0].cells) delete other.dataset.order;
  th.dataset.order = order;
  const sign = order === 'asc' ? 1 : -1;
  const rows = Array.from(table.tBodies[0].rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
    if (x === y) return 0;
    if (x === null || x === '') return 1;   // missing values last, whichever the order
    if (y === null || y === '') return -1;
    return (x < y ? -1 : 1) * sign;
  });
  for (const row of rows) table.tBodies[0].appendChild(row);
}
for (const table of document.querySelectorAll('table.sortable')) {
  Array.from(table.tHead.rows[0].cells).forEach((th, index) => th.addEventListener('click', () => sortTable(table, index)));
}
const recipes = JSON.parse(document.getElementById('recipes-data').textContent);
function showDiff() {
  const a = document.getElementById('diff-a').value, b = document.getElementById('diff-b').value;
  const left = recipes[a] || {}, right = recipes[b] || {};
  const keys = Array.from(new Set([...Object.keys(left), ...Object.keys(right)])).sort();
  const body = document.querySelector('#recipe-diff tbody');
  body.innerHTML = '';
  const shown = (v) => v === undefined ? '(absent)' : JSON.stringify(v);
  let differences = 0;
  for (const key of keys) {
    if (JSON.stringify(left[key]) === JSON.stringify(right[key])) continue;
    differences += 1;
    const row = body.insertRow();
    for (const text of [key, shown(left[key]), shown(right[key])]) row.insertCell().textContent = text;
  }
  document.getElementById('diff-summary').textContent = a === b ? 'the same run on both sides'
    : differences === 0 ? 'the two recipes are identical' : differences + ' key(s) differ';
  document.getElementById('diff-summary').className = differences === 0 ? 'same' : '';
}
for (const id of ['diff-a', 'diff-b']) { const s = document.getElementById(id); if (s) s.addEventListener('change', showDiff); }
if (document.getElementById('diff-a')) showDiff();
"""
