"""``gradebook.html``: the class at a glance, one self-contained page.

A heatmap (submission x rubric item, coloured by status), the
distribution of scores, and the findings most common across the class
(what to teach again).  Every text from a submission (its error, its
findings' numbers) is escaped: it is the engine's text.
"""
from collections import Counter
from html import escape

from .scoring import ERROR, FAILED, MISSING, PASSED

COLOURS = {PASSED: "#2e9d4f", FAILED: "#d64541", MISSING: "#9aa0a6", ERROR: "#f29d38", "reported": "#f3d250"}
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 24px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th.item { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
td.cell { text-align: center; color: #fff; font-weight: 600; min-width: 28px; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; color: #fff; }
.muted { color: #666; }
"""


def gradebook_html(grades, rubric, record):
    run = record["run"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Gradebook: {escape(rubric.name)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Gradebook: {escape(rubric.name)}</h1>",
             f"<p class='muted'>{len(grades)} submission(s) graded; {rubric.max_score:g} points; every submission "
             f"ran the same cases: families {escape(', '.join(run['families']))}, {run['cases']} per family, "
             f"seed {run['seed']}" + (f"; reference {escape(record['reference'])}" if record.get("reference") else "")
             + ".</p>",
             "<h2>Scores</h2>", _histogram(grades, rubric),
             "<h2>Most common findings</h2>", _common_findings(grades, rubric),
             "<h2>Submissions by item</h2>", _legend(), _heatmap(grades, rubric),
             "</body></html>"]
    return "\n".join(parts) + "\n"


def _status(grade_item):
    return "reported" if grade_item.status == FAILED and not grade_item.item.weight else grade_item.status


def _legend():
    return "<p class='legend'>" + "".join(f"<span style='background:{colour}'>{name}</span>"
                                          for name, colour in COLOURS.items()) + "</p>"


def _heatmap(grades, rubric):
    head = "".join(f"<th class='item' title='{escape(item.title)}'>{escape(item.name)} ({item.weight:g})</th>"
                   for item in rubric.items)
    rows = []
    for grade in sorted(grades, key=lambda g: (-g.score, g.id)):
        cells = "".join(f"<td class='cell' style='background:{COLOURS[_status(g)]}' "
                        f"title='{escape(g.item.name)}: {escape(_status(g))} {escape(g.note)}'>{g.score:g}</td>"
                        for g in grade.items)
        error = f" <span class='muted'>({escape(grade.error)})</span>" if grade.error else ""
        rows.append(f"<tr><th><a href='feedback/{escape(grade.id)}.md'>{escape(grade.id)}</a>{error}</th>"
                    f"<td>{grade.score:g}/{grade.max_score:g}</td>{cells}</tr>")
    return f"<table><tr><th>submission</th><th>score</th>{head}</tr>{''.join(rows)}</table>"


def _histogram(grades, rubric, width=480, height=140):
    """Scores in bins of one point (or of max/20 for larger rubrics), as SVG bars."""
    top = max(rubric.max_score, 1)
    step = max(1.0, top / 20)
    bins = Counter(min(int(grade.score // step), int(top // step)) for grade in grades)
    n_bins = int(top // step) + 1
    tallest = max(bins.values(), default=1)
    bar = width / n_bins
    bars = []
    for b in range(n_bins):
        h = (height - 40) * bins.get(b, 0) / tallest
        label = f"{b * step:g}"
        bars.append(f"<rect x='{b * bar + 1:.1f}' y='{height - 20 - h:.1f}' width='{bar - 2:.1f}' height='{h:.1f}' "
                    f"fill='#4a7fc1'><title>{label}: {bins.get(b, 0)} submission(s)</title></rect>"
                    f"<text x='{b * bar + bar / 2:.1f}' y='{height - 6}' font-size='10' text-anchor='middle'>"
                    f"{label}</text>"
                    + (f"<text x='{b * bar + bar / 2:.1f}' y='{height - 24 - h:.1f}' font-size='10' "
                       f"text-anchor='middle'>{bins[b]}</text>" if bins.get(b) else ""))
    return (f"<svg width='{width}' height='{height}' role='img' aria-label='distribution of scores'>"
            f"{''.join(bars)}</svg>")


def _common_findings(grades, rubric):
    """Each finding (kind, op, part) with the submissions showing it: those
    that cost points first, most common first."""
    seen = {}
    for grade in grades:
        for finding in grade.findings:
            key = (finding["kind"], finding["op"], finding["part"])
            seen.setdefault(key, []).append(grade.id)
    if not seen:
        return "<p>No finding: every submission agrees with PyTorch on every probe and case.</p>"
    def item_of(key):
        return rubric.item_of({"kind": key[0], "op": key[1]})

    # What costs points first (what to teach again), then what is only reported.
    rows = []
    for (kind, op, part), ids in sorted(seen.items(), key=lambda kv: (not (item_of(kv[0]) and item_of(kv[0]).weight),
                                                                      -len(kv[1]), kv[0])):
        item = item_of((kind, op))
        charged = f"{item.name} ({item.weight:g})" if item else "no item"
        rows.append(f"<tr><td>{len(ids)}</td><td>{escape(kind)}</td><td>{escape(op)}</td><td>{escape(part)}</td>"
                    f"<td>{escape(charged)}</td><td>{escape(', '.join(ids))}</td></tr>")
    return ("<table><tr><th>submissions</th><th>kind</th><th>op</th><th>what is wrong</th><th>item</th>"
            f"<th>who</th></tr>{''.join(rows)}</table>")
