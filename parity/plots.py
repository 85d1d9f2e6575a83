"""`parity report --html`: one self-contained page (PNGs inlined as data
URIs, no scripts, nothing fetched) showing a report's verdicts per family,
its error distributions per op against the tolerance, its errors against
graph size and depth, and every case that did not pass."""
import base64
import html
import io

import numpy as np

from .report import failing, rows_per_op, summary, verdict_table

VERDICT_COLORS = {"pass": "#4c9a2a", "ill_conditioned": "#9ecae1", "torch_off": "#3182bd",
                  "unsupported": "#bdbdbd", "fail": "#d62728", "error": "#7f2704"}
# Errors are drawn on a log scale, where 0 and inf have no place: exact
# matches are drawn at the floor (below anything float64 rounding produces),
# and errors beyond the ceiling (inf: a nan or inf against a number) at it.
ZERO_FLOOR = 1e-20
CEILING = 1e20
ERRORS = (("max_rel_err_data", "values"), ("max_rel_err_grad", "gradients"))
# Points drawn per op in the distribution plot: beyond this a random sample
# (the max is always kept), so big reports stay readable and fast to draw.
POINTS_PER_OP = 2000


def write_html(rows, out, title="parity report", sidecar=None):
    with open(out, "w", encoding="utf-8") as file:
        file.write(html_page(rows, title, sidecar))


def html_page(rows, title="parity report", sidecar=None):
    rtol = _rtol(sidecar)
    sections = [
        ("Verdicts per family", _figure(_verdict_bars, rows), verdict_table(rows).to_html()),
        ("Error per op", _figure(_op_distributions, rows, rtol),
         f"<p>Largest relative error per case, for every case that uses the op. Dashed: the tolerance "
         f"(rtol {rtol:g}). Exact matches are drawn at {ZERO_FLOOR:g}, errors above {CEILING:g} "
         f"(inf included) at {CEILING:g}.</p>"),
        ("Error against graph size and depth", _figure(_size_scatter, rows, rtol), ""),
    ]
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", _run_info(rows, sidecar)]
    for heading, image, text in sections:
        parts += [f"<h2>{heading}</h2>", text, image]
    parts += ["<h2>Cases that did not pass</h2>", _non_passing_table(rows),
              "<h2>Summary</h2>", f"<pre>{html.escape(summary(rows))}</pre>", "</body></html>"]
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


def _verdict_bars(figure, rows):
    # Side by side on a log scale: 3 failures next to 3000 passes stay visible.
    ax = figure.subplots()
    table = verdict_table(rows).drop(index="total", columns="total")
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


def _op_distributions(figure, rows, rtol):
    # Only the columns drawn: a report's rows, once per op, are many.
    by_op = dict(tuple(rows_per_op(rows[["ops", *(column for column, _ in ERRORS)]]).groupby("op")))
    ops = sorted(by_op)
    rng = np.random.default_rng(0)
    for ax, (column, label) in zip(figure.subplots(1, 2, sharey=True), ERRORS):
        for x, op in enumerate(ops):
            errors = _shown(by_op[op][column])
            if len(errors) > POINTS_PER_OP:
                errors = np.append(rng.choice(errors, POINTS_PER_OP, replace=False), errors.max())
            ax.scatter(x + rng.uniform(-0.3, 0.3, len(errors)), errors, s=4, alpha=0.4, color="#3182bd")
        ax.axhline(rtol, color="#d62728", linestyle="--", linewidth=1, label=f"rtol {rtol:g}")
        ax.set_yscale("log")
        ax.set_ylim(ZERO_FLOOR / 10, CEILING * 10)
        ax.set_xticks(range(len(ops)), ops, rotation=90, fontsize=7)
        ax.set_title(f"relative error of {label}")
        ax.legend(loc="upper right")


def _size_scatter(figure, rows, rtol):
    # A case's worst relative error, of its values or its gradients.
    worst = np.fmax(rows["max_rel_err_data"], rows["max_rel_err_grad"])
    for ax, x in zip(figure.subplots(1, 2, sharey=True), ("n_nodes", "depth")):
        for verdict in VERDICT_COLORS:  # passes first, failures drawn over them
            drawn = (rows["verdict"] == verdict) & worst.notna()
            if drawn.any():
                ax.scatter(rows.loc[drawn, x], _shown(worst[drawn]), s=6, alpha=0.5, label=verdict,
                           color=VERDICT_COLORS[verdict])
        ax.axhline(rtol, color="#d62728", linestyle="--", linewidth=1)
        ax.set_xscale("log")  # every graph has a node, so sizes and depths start at 1
        ax.set_yscale("log")
        ax.set_ylim(ZERO_FLOOR / 10, CEILING * 10)
        ax.set_xlabel(x)
        ax.set_title(f"worst relative error (values or gradients) against {x}")
    ax.legend(loc="upper right")


def _run_info(rows, sidecar):
    metadata = (sidecar or {}).get("metadata", {})
    args = (sidecar or {}).get("args", {})
    items = [("cases", len(rows)), ("engines", ", ".join(sorted(set(rows["engine"]))))]
    items += [(key, "default" if args[key] is None else args[key])
              for key in ("families", "cases", "seed", "edge_rate", "max_nodes") if key in args]
    items += [(key, metadata[key]) for key in ("engine_version", "git", "python", "torch", "platform")
              if metadata.get(key)]
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items)
    return f"<table>{cells}</table>"


def _non_passing_table(rows, limit=1000):
    bad = rows[rows["verdict"] != "pass"]
    if bad.empty:
        return "<p>Every case passed.</p>"
    # Failures and errors first: they are why anyone opens this page.
    bad = bad.assign(_later=~bad.index.isin(failing(rows).index)).sort_values("_later", kind="stable")
    more = f"<p>... and {len(bad) - limit} more (see the CSV).</p>" if len(bad) > limit else ""
    bad = bad.head(limit)
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
