"""`parity report --html`: one self-contained page (PNGs inlined as data
URIs, no scripts, nothing fetched) showing a report's verdicts per family,
its error distributions per op against the tolerance, its errors against
graph size and depth, and every case that did not pass.

The page is drawn from a Digest, added up a chunk of rows at a time (as
report.Summary is), so a report of any length is drawn in bounded memory:
beyond POINTS_PER_OP errors per op and POINTS_PER_VERDICT cases per verdict,
the figures show a seeded random sample (the largest error always kept).
"""
import base64
import html
import io

import numpy as np
import pandas as pd

from .report import BAD_VERDICTS, Summary, single_op_rows

VERDICT_COLORS = {"pass": "#4c9a2a", "ill_conditioned": "#9ecae1", "torch_off": "#3182bd",
                  "unsupported": "#bdbdbd", "fail": "#d62728", "error": "#7f2704"}
# Errors are drawn on a log scale, where 0 and inf have no place: exact
# matches are drawn at the floor (below anything float64 rounding produces),
# and errors beyond the ceiling (inf: a nan or inf against a number) at it.
ZERO_FLOOR = 1e-20
CEILING = 1e20
ERRORS = (("max_rel_err_data", "values"), ("max_rel_err_grad", "gradients"))
# Points drawn per op in the distribution plot, and per verdict in the size
# plot: beyond these a random sample (the max is always kept), so that big
# reports stay readable and fast to draw.
POINTS_PER_OP = 2000
POINTS_PER_VERDICT = 20_000
NON_PASSING_ROWS = 1000
SIZE_COLUMNS = ("n_nodes", "depth")


class Digest:
    """What the page shows of a report, added up chunk by chunk."""

    def __init__(self):
        self.summary = Summary()
        self.engines = set()
        self.rng = np.random.default_rng(0)
        self.op_errors = {}   # (op, column) -> Sample of shown errors
        self.sizes = {}       # verdict -> Sample of (n_nodes, depth, worst error) rows
        self.failures, self.others = [], []  # the first non-passing rows: fail/error, the rest
        self.non_passing = 0

    def add(self, df):
        self.summary.add(df)
        self.engines.update(df["engine"])
        per_op = single_op_rows(df[["ops", *(column for column, _ in ERRORS)]])
        for op, rows in per_op.groupby("op"):
            for column, _ in ERRORS:
                self._sample(self.op_errors, (op, column), _shown(rows[column]), POINTS_PER_OP)
        worst = np.fmax(df["max_rel_err_data"], df["max_rel_err_grad"])
        for verdict, rows in df.assign(worst=worst)[worst.notna()].groupby("verdict"):
            points = np.column_stack([rows[c].to_numpy(float) for c in SIZE_COLUMNS] + [_shown(rows["worst"])])
            self._sample(self.sizes, verdict, points, POINTS_PER_VERDICT)
        bad = df[df["verdict"] != "pass"]
        self.non_passing += len(bad)
        for kept, rows in ((self.failures, bad[bad["verdict"].isin(BAD_VERDICTS)]),
                           (self.others, bad[~bad["verdict"].isin(BAD_VERDICTS)])):
            if sum(map(len, kept)) < NON_PASSING_ROWS:
                kept.append(rows.head(NON_PASSING_ROWS))
        return self

    def _sample(self, samples, key, points, size):
        sample = samples.setdefault(key, Sample(size))
        sample.add(points, self.rng)

    def non_passing_rows(self):
        """Failures and errors first (they are why anyone opens the page), then the rest."""
        frames = [f for f in self.failures + self.others if len(f)]
        return pd.concat(frames).head(NON_PASSING_ROWS) if frames else None


class Sample:
    """A uniform random sample of at most ``size`` points (the rows of an
    array) from a stream, plus the largest point (by its last column)."""

    def __init__(self, size):
        self.size = size
        self.points, self.keys, self.largest = None, None, None

    def add(self, points, rng):
        if not len(points):
            return
        points = points.reshape(len(points), -1)
        top = points[np.argmax(points[:, -1])]
        if self.largest is None or top[-1] > self.largest[-1]:
            self.largest = top
        keys = rng.random(len(points))  # the points with the smallest keys are the sample
        if self.points is not None:
            points, keys = np.concatenate([self.points, points]), np.concatenate([self.keys, keys])
        if len(points) > self.size:
            kept = np.argpartition(keys, self.size)[:self.size]
            points, keys = points[kept], keys[kept]
        self.points, self.keys = points, keys

    def drawn(self):
        """The sample, with the largest point added if sampling dropped it."""
        if self.points is None:
            return np.empty((0, 1))
        if not (self.points[:, -1] == self.largest[-1]).any():
            return np.vstack([self.points, self.largest])
        return self.points


def write_html(digest, out, title="parity report", sidecar=None):
    with open(out, "w", encoding="utf-8") as file:
        file.write(html_page(digest, title, sidecar))


def html_page(rows, title="parity report", sidecar=None):
    """The page of a report: its rows (a DataFrame) or a Digest of them."""
    digest = rows if isinstance(rows, Digest) else Digest().add(rows)
    rtol = _rtol(sidecar)
    sections = [
        ("Verdicts per family", _figure(_verdict_bars, digest), digest.summary.verdict_table().to_html()),
        ("Error per op", _figure(_op_distributions, digest, rtol),
         f"<p>Largest relative error per case, for every case that uses the op alone (a case of "
         f"several ops shows whichever of them is wrong). Dashed: the tolerance "
         f"(rtol {rtol:g}). Exact matches are drawn at {ZERO_FLOOR:g}, errors above {CEILING:g} "
         f"(inf included) at {CEILING:g}.</p>"),
        ("Error against graph size and depth", _figure(_size_scatter, digest, rtol), ""),
    ]
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", _run_info(digest, sidecar)]
    if (sidecar or {}).get("diagnosis"):
        parts += ["<h2>Findings</h2>", _findings_table(sidecar["diagnosis"])]
    for heading, image, text in sections:
        parts += [f"<h2>{heading}</h2>", text, image]
    parts += ["<h2>Cases that did not pass</h2>", _non_passing_table(digest),
              "<h2>Summary</h2>", f"<pre>{html.escape(digest.summary.text())}</pre>", "</body></html>"]
    return "\n".join(parts)


STYLE = """body{font-family:sans-serif;margin:2em auto;padding:0 1em;max-width:1100px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
td.case{white-space:nowrap}td.ops{font-size:11px}td.detail,td code{overflow-wrap:anywhere}
code{font-size:12px}img{max-width:100%}pre{white-space:pre-wrap;overflow-wrap:anywhere}"""


def _rtol(sidecar):
    tolerances = (sidecar or {}).get("tolerances")
    if tolerances:
        return tolerances["rtol"]
    from .compare import Tolerances
    return Tolerances().rtol


def _figure(draw, *arguments):
    """An <img> of what ``draw(figure, *arguments)`` draws, as an inline PNG."""
    from matplotlib.figure import Figure  # not pyplot: no display, no global state

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    draw(figure, *arguments)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{draw.__name__.strip('_')}' src='data:image/png;base64,{data}'>"


def _verdict_bars(figure, digest):
    # Side by side on a log scale: 3 failures next to 3000 passes stay visible.
    ax = figure.subplots()
    table = digest.summary.verdict_table().drop(index="total", columns="total")
    width = 0.8 / len(table.columns)
    for i, verdict in enumerate(table.columns):
        x = np.arange(len(table)) + (i - (len(table.columns) - 1) / 2) * width
        bars = ax.bar(x, table[verdict], width, label=verdict, color=VERDICT_COLORS[verdict])
        ax.bar_label(bars, [str(n) if n else "" for n in table[verdict]], fontsize=8)
    ax.set_xticks(range(len(table)), table.index)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)  # a count of 1 still shows as a bar
    ax.yaxis.set_major_formatter("{x:g}")
    ax.set_ylabel("cases")
    ax.legend()


def _shown(errors):
    """Errors as drawn on a log axis: nan dropped, the rest clipped to [floor, ceiling]."""
    errors = np.asarray(errors, dtype=float)
    return np.clip(errors[~np.isnan(errors)], ZERO_FLOOR, CEILING)


def _op_distributions(figure, digest, rtol):
    ops = sorted({op for op, _ in digest.op_errors})
    jitter = np.random.default_rng(0)
    for ax, (column, label) in zip(figure.subplots(1, 2, sharey=True), ERRORS):
        for x, op in enumerate(ops):
            errors = digest.op_errors[op, column].drawn()[:, -1]
            ax.scatter(x + jitter.uniform(-0.3, 0.3, len(errors)), errors, s=4, alpha=0.4, color="#3182bd")
        ax.axhline(rtol, color="#d62728", linestyle="--", linewidth=1, label=f"rtol {rtol:g}")
        ax.set_yscale("log")
        ax.set_ylim(ZERO_FLOOR / 10, CEILING * 10)
        ax.set_xticks(range(len(ops)), ops, rotation=90, fontsize=7)
        ax.set_title(f"relative error of {label}")
        ax.legend(loc="upper right")


def _size_scatter(figure, digest, rtol):
    # A case's worst relative error, of its values or its gradients.
    for ax, (i, x) in zip(figure.subplots(1, 2, sharey=True), enumerate(SIZE_COLUMNS)):
        for verdict in VERDICT_COLORS:  # passes first, failures drawn over them
            if verdict in digest.sizes:
                points = digest.sizes[verdict].drawn()
                ax.scatter(points[:, i], points[:, -1], s=6, alpha=0.5, label=verdict,
                           color=VERDICT_COLORS[verdict])
        ax.axhline(rtol, color="#d62728", linestyle="--", linewidth=1)
        ax.set_xscale("log")  # every graph has a node, so sizes and depths start at 1
        ax.set_yscale("log")
        ax.set_ylim(ZERO_FLOOR / 10, CEILING * 10)
        ax.set_xlabel(x)
        ax.set_title(f"worst relative error (values or gradients) against {x}")
    ax.legend(loc="upper right")


def _run_info(digest, sidecar):
    metadata = (sidecar or {}).get("metadata", {})
    args = (sidecar or {}).get("args", {})
    items = [("cases", digest.summary.cases), ("engines", ", ".join(sorted(digest.engines)))]
    items += [(key, "default" if args[key] is None else args[key])
              for key in ("families", "cases", "seed", "edge_rate", "max_nodes", "draws_per_graph") if key in args]
    items += [(key, metadata[key]) for key in ("engine_version", "git", "python", "torch", "platform")
              if metadata.get(key)]
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items)
    return f"<table>{cells}</table>"


def _findings_table(findings):
    """The run's diagnosis (diagnosis.py): what the engine gets wrong, each
    with its smallest case and its replay command, the worst first."""
    header = ("kind", "op", "part", "cases", "smallest case", "what it gives", "replay")
    lines = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for f in findings:
        cells = [html.escape(str(f.get(key, ""))) for key in ("kind", "op", "part", "cases", "name", "detail")]
        lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                     + f"<td><code>{html.escape(str(f.get('replay', '')))}</code></td></tr>")
    return "\n".join(lines + ["</table>"])


def _non_passing_table(digest):
    bad = digest.non_passing_rows()
    if bad is None:
        return "<p>Every case passed.</p>"
    more = (f"<p>... and {digest.non_passing - len(bad)} more (see the CSV).</p>"
            if digest.non_passing > len(bad) else "")
    header = ("case", "verdict", "nodes", "depth", "ops", "rel err values", "rel err grads", "detail", "replay")
    lines = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for row in bad.itertuples():
        cells = [html.escape(str(c)) for c in (row.verdict, row.n_nodes, row.depth)]
        errors = [f"{row.max_rel_err_data:.2e}", f"{row.max_rel_err_grad:.2e}"]
        lines.append(f"<tr><td class='case'>{html.escape(row.case_id)}</td>"
                     + "".join(f"<td>{c}</td>" for c in cells)
                     + f"<td class='ops'>{html.escape(row.ops.replace(';', ' '))}</td>"
                     + "".join(f"<td>{e}</td>" for e in errors)
                     + f"<td class='detail'>{html.escape(row.detail)}</td>"
                     + f"<td><code>{html.escape(row.replay)}</code></td></tr>")
    return "\n".join(lines + ["</table>", more])
