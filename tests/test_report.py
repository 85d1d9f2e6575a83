"""The report schema, strict reading, the summary and the regression check,
on synthetic rows (no torch needed)."""
import math

import pandas as pd
import pytest

from parity.report import COLUMNS, ReportError, Summary, compare_reports, iter_report, read_report


def summary(df, seconds=None, ran=None, limit=100):
    return Summary(limit).add(df).text(seconds, ran)


def csv_text(df):
    """A report DataFrame as CSV text, to compare reports by content."""
    return df.to_csv(index=False, na_rep="nan", lineterminator="\n")


def row(case_id, verdict="pass", family="expr", rel_grad=1e-16, rel_data=0.0, ops="add;mul", detail=""):
    index = int(case_id.rsplit("-", 1)[1])
    return {"case_id": case_id, "family": family, "seed": 0, "index": index, "name": "", "engine": "engine",
            "n_nodes": 3, "n_leaves": 2, "depth": 2, "ops": ops, "verdict": verdict,
            "max_abs_err_data": rel_data, "max_rel_err_data": rel_data, "max_ulp_data": 0.0,
            "max_abs_err_grad": rel_grad, "max_rel_err_grad": rel_grad, "max_ulp_grad": 1.0,
            "engine_seconds": 1e-4, "torch_seconds": 2e-4, "oracle_consulted": verdict != "pass",
            "detail": detail, "replay": f"parity replay {case_id} --engine engine"}


def frame(*rows):
    return pd.DataFrame(list(rows), columns=COLUMNS)


def write(tmp_path, df, name="report.csv"):
    path = tmp_path / name
    path.write_text(csv_text(df))
    return path


def test_a_report_reads_back_as_written_nan_inf_and_signed_zero_included(tmp_path):
    rows = frame(row("expr-0-0", rel_grad=math.inf), row("expr-0-1", rel_grad=math.nan, rel_data=-0.0),
                 row("expr-0-2", detail='grad of leaf v0: "quoted", comma'))
    back = read_report(write(tmp_path, rows))
    assert back["max_rel_err_grad"].iloc[0] == math.inf
    assert math.isnan(back["max_rel_err_grad"].iloc[1])
    assert math.copysign(1.0, back["max_rel_err_data"].iloc[1]) == -1.0
    assert back["detail"].iloc[2] == 'grad of leaf v0: "quoted", comma'
    assert back["index"].dtype == "int64" and back["oracle_consulted"].dtype == bool
    assert csv_text(back) == csv_text(rows)


@pytest.mark.parametrize("damage, message", [
    (lambda text: text.replace("max_rel_err_grad", "rel_grad", 1), "missing column(s) max_rel_err_grad"),
    (lambda text: text.replace(",1e-16,1e-16,", ",1e-16,tiny,", 1), "line 2: column max_rel_err_grad: "
                                                                   "cannot parse 'tiny'"),
    (lambda text: text.replace(",pass,", ",passed,", 1), "unknown verdict(s) 'passed'"),
    (lambda text: text.replace("expr-0-1,", "expr-0-0,", 1), "case_id 'expr-0-0' appears more than once"),
    (lambda text: "", "empty file"),
])
def test_a_malformed_report_is_refused_with_a_message_naming_the_problem(tmp_path, damage, message):
    path = tmp_path / "bad.csv"
    path.write_text(damage(csv_text(frame(row("expr-0-0"), row("expr-0-1")))))
    with pytest.raises(ReportError) as raised:
        read_report(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_a_missing_report_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        read_report(tmp_path / "nothing.csv")


def test_the_summary_counts_verdicts_per_family_and_lists_replays_of_failures():
    rows = frame(row("expr-0-0"), row("expr-0-1", "fail", detail="grad of leaf v1: engine 1.0, torch 2.0"),
                 row("edges-0-0", "error", family="edges", detail="RecursionError"), row("edges-0-1", family="edges"))
    table = Summary().add(rows).verdict_table()
    assert table.loc["expr", "fail"] == 1 and table.loc["edges", "error"] == 1 and table.loc["total", "total"] == 4
    text = summary(rows, seconds=2.0, ran=4)
    assert "2 case(s) failed" in text
    assert "parity replay expr-0-1 --engine engine    # fail: grad of leaf v1" in text
    assert "parity replay edges-0-0 --engine engine    # error: RecursionError" in text
    assert "2.0 cases/s" in text
    many = frame(*[row(f"expr-0-{i}", "fail") for i in range(150)])
    assert summary(many).count("parity replay") == 100 and "... and 50 more" in summary(many)


def test_op_quantiles_take_the_cases_of_that_op_alone_and_skip_nan():
    # A case of several ops is no evidence about any one of them: with one
    # wrong op, counting every case that contains an op lit up every op.
    rows = frame(*[row(f"expr-0-{i}", ops="tanh", rel_grad=float(i)) for i in range(101)],
                 row("expr-0-101", ops="tanh", rel_grad=math.nan),
                 row("expr-0-102", ops="add;tanh", rel_grad=1e300), row("expr-0-103", ops="", rel_grad=1e300))
    table = Summary().add(rows).op_error_table()
    assert list(table.index) == ["tanh"] and table.loc["tanh", "cases"] == 102
    assert table.loc["tanh", "median"] == 50.0 and table.loc["tanh", "p99"] == 99.0
    assert table.loc["tanh", "max"] == 100.0


def test_a_summary_without_single_op_cases_has_no_op_table():
    text = Summary().add(frame(row("expr-0-0", ops="add;tanh"))).text()
    assert "per op" not in text and "verdicts per family" in text


def test_a_summary_added_up_chunk_by_chunk_is_the_summary_of_the_whole(tmp_path):
    # What keeps a run's memory bounded: the summary never needs every row at once.
    verdicts = ["pass", "fail", "ill_conditioned", "error", "pass", "torch_off"]
    rows = frame(*[row(f"expr-0-{i}", verdicts[i % 6], family=("expr", "edges")[i % 4 == 0],
                       rel_grad=(0.0, 1e-16 * i, math.nan)[i % 3], ops=("add;tanh", "tanh", "exp;add")[i % 5 % 3],
                       detail=f"case {i}") for i in range(230)])
    path = write(tmp_path, rows)
    chunked = Summary(limit=7)
    chunks = list(iter_report(path, chunk_rows=50))
    for chunk in chunks:
        chunked.add(chunk)
    assert len(chunks) == 5
    assert chunked.text(seconds=2.0) == summary(rows, seconds=2.0, limit=7)
    assert chunked.verdict_counts() == rows["verdict"].value_counts().to_dict()
    assert chunked.failed and "... and 70 more" in chunked.text()


def test_a_bad_value_in_a_later_chunk_names_its_line(tmp_path):
    path = tmp_path / "bad.csv"
    text = csv_text(frame(*[row(f"expr-0-{i}") for i in range(10)]))
    path.write_text(text.replace("expr-0-7,expr,0,7,", "expr-0-7,expr,0,seven,"))
    with pytest.raises(ReportError, match=r"line 9: column index: cannot parse 'seven'"):
        list(iter_report(path, chunk_rows=3))


def test_compare_sorts_out_regressions_fixes_additions_and_missing_cases():
    baseline = frame(row("expr-0-0"), row("expr-0-1", "fail"), row("expr-0-2"), row("expr-0-3"),
                     row("expr-0-4", rel_grad=1e-16), row("expr-0-5", "ill_conditioned"))
    current = frame(row("expr-0-0", "fail", detail="grad of leaf v0: engine 1.0, torch 2.0"),
                    row("expr-0-1"), row("expr-0-3", "error"), row("expr-0-4", rel_grad=5e-13),
                    row("expr-0-5", "torch_off"), row("expr-0-9"))
    result = compare_reports(baseline, current)
    assert [(c.case_id, c.what) for c in result.regressed] == [
        ("expr-0-0", "pass -> fail: grad of leaf v0: engine 1.0, torch 2.0"),
        ("expr-0-3", "pass -> error"),
        ("expr-0-4", "max_rel_err_grad 1.00e-16 -> 5.00e-13 (x50, allowed x10 above 1e-14)"),
    ]
    assert [c.case_id for c in result.fixed] == ["expr-0-1"]
    assert [c.case_id for c in result.changed] == ["expr-0-5"]
    assert result.added == ["expr-0-9"] and result.missing == ["expr-0-2"]
    assert "regressed: 3" in result.format() and "missing: 1\n  expr-0-2" in result.format()


@pytest.mark.parametrize("old, new, regressed", [
    (0.0, 2e-16, False),       # ulp noise over an exact match: under the floor
    (1e-14, 9.9e-14, False),   # grown, within the factor
    (1e-14, 1.1e-13, True),
    (math.nan, 1.0, False),    # not comparable before: not a growth
    (1e-15, math.nan, False),
])
def test_error_growth_counts_past_the_factor_above_the_floor(old, new, regressed):
    result = compare_reports(frame(row("expr-0-0", rel_data=old)), frame(row("expr-0-0", rel_data=new)))
    assert bool(result.regressed) is regressed


def test_the_summary_lists_the_smallest_failing_cases_first():
    # Regression: a learner saw 271-node graphs first while one-node cases
    # showing the same bug were further down the CSV.
    import pandas as pd

    from parity.report import Summary

    rows = pd.DataFrame({"case_id": [f"expr-0-{i}" for i in range(6)], "family": ["expr"] * 6,
                         "ops": ["tanh"] * 6, "verdict": ["fail"] * 6, "n_nodes": [271, 5, 1, 40, 1, 3],
                         "max_rel_err_grad": [1.0] * 6, "replay": [f"r{i}" for i in range(6)],
                         "detail": [""] * 6})
    summary = Summary(limit=4).add(rows.iloc[:3]).add(rows.iloc[3:])
    assert [replay for replay, _, _ in summary.failures] == ["r2", "r4", "r5", "r1"]
    assert summary.n_failures == 6
