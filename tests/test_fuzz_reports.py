"""Fuzzing the readers: mutated CSVs and sidecars go to `parity report`,
`compare` and `merge`, mutated cases to `replay --json`.  Whatever the
input, the answer is a normal result or exit status 2 with one
`parity: error:` line - never a traceback - and a refused merge writes
nothing."""
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from parity.campaign import run
from parity.cases import case_from_id
from parity.cli import main
from parity.plan import RunSpec, Shard
from parity.report_files import sidecar_path

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
SPEC = RunSpec(families=("accumulation", "edges"), cases=4)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    where = tmp_path_factory.mktemp("shards")
    paths = [where / f"shard{k}.csv" for k in (1, 2)]
    for k, path in enumerate(paths, start=1):
        run(SPEC, path, Shard(k, 2))
    return [(path.read_bytes(), sidecar_path(path).read_bytes()) for path in paths]


def mutated(data):
    """Bytes of a file, then a few edits: a byte replaced, a slice cut or
    doubled, text spliced in (numbers too long for int64, formulas, JSON
    that nests, quotes and line ends)."""
    splices = st.sampled_from([b"99999999999999999999999", b"-1", b"nan", b"=1+1", b'"', b"\n", b"\r\n", b",",
                               b"[[[[[[[[", b"{\"a\":", b"null", b"true", b"\"many\"", b"\x00", b"\xff\xfe"])

    @st.composite
    def edit(draw, text):
        if not text:
            return draw(splices)
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["replace", "cut", "double", "splice", "truncate"]))
        if kind == "replace" and at < len(text):
            return text[:at] + bytes([draw(st.integers(0, 255))]) + text[at + 1:]
        if kind == "cut":
            return text[:at] + text[at + draw(st.integers(1, 40)):]
        if kind == "double":
            return text[:at] + text[at:at + 60] + text[at:]
        if kind == "truncate":
            return text[:at]
        return text[:at] + draw(splices) + text[at:]

    @st.composite
    def edits(draw):
        text = data
        for _ in range(draw(st.integers(1, 3))):
            text = draw(edit(text))
        return text
    return edits()


def no_traceback(capsys, status):
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if status == 2:
        assert err.startswith("parity: error: ") and err.count("\n") == 1, err
    return out, err


def files_in(directory):
    return sorted(os.listdir(directory))


@FUZZ
@given(data=st.data())
def test_report_and_compare_survive_any_csv(shards, tmp_path, capsys, data):
    (csv_bytes, sidecar_bytes), (other, _) = shards
    report = tmp_path / "fuzz.csv"
    report.write_bytes(data.draw(mutated(csv_bytes)))
    sidecar_path(report).write_bytes(data.draw(st.sampled_from([sidecar_bytes]) | mutated(sidecar_bytes)
                                               | json_mutated(json.loads(sidecar_bytes))))
    baseline = tmp_path / "baseline.csv"
    baseline.write_bytes(other)
    html = tmp_path / "page.html"
    before = files_in(tmp_path)
    drawn = data.draw(st.booleans())  # a page takes a while: some of the time
    status = main(["report", str(report)] + (["--html", str(html)] if drawn else []))
    assert status in (0, 1, 2)
    no_traceback(capsys, status)
    if status == 2:
        assert files_in(tmp_path) == before  # no page of a bad report
    html.unlink(missing_ok=True)
    status = main(["compare", str(baseline), str(report)])
    assert status in (0, 1, 2)
    no_traceback(capsys, status)


@FUZZ
@given(data=st.data())
def test_merge_survives_any_shard_and_writes_nothing_when_it_refuses(shards, tmp_path, capsys, data):
    paths = []
    for k, (csv_bytes, sidecar_bytes) in enumerate(shards, start=1):
        path = tmp_path / f"in{k}.csv"
        damage = data.draw(st.sampled_from(["none", "csv", "sidecar"]))
        path.write_bytes(data.draw(mutated(csv_bytes)) if damage == "csv" else csv_bytes)
        sidecar_path(path).write_bytes(data.draw(mutated(sidecar_bytes) | json_mutated(json.loads(sidecar_bytes)))
                                       if damage == "sidecar" else sidecar_bytes)
        paths.append(path)
    out = tmp_path / "merged" / "out.csv"
    out.parent.mkdir(exist_ok=True)
    for stale in out.parent.iterdir():
        stale.unlink()
    status = main(["merge", *map(str, paths), "--out", str(out)])
    assert status in (0, 2)
    no_traceback(capsys, status)
    if status == 2:
        assert files_in(out.parent) == []
    else:
        assert json.loads(sidecar_path(out).read_text())["complete"]


def json_mutated(data):
    """JSON text of ``data`` with one value somewhere in it replaced by any
    JSON value: well-formed JSON of the wrong shape."""
    values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=3), max_leaves=6)

    def places(value, path=()):
        yield path
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            yield from places(item, path + (key,))

    @st.composite
    def mutate(draw):
        where = draw(st.sampled_from(list(places(data))))
        new = draw(values)
        if not where:
            return json.dumps(new).encode()
        copy = json.loads(json.dumps(data))
        parent = copy
        for key in where[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = new
        return json.dumps(copy).encode()
    return mutate()


CASE_JSON = case_from_id("accumulation-0-4").to_json()
CASE = json.dumps(CASE_JSON).encode()


@FUZZ
@given(text=mutated(CASE) | json_mutated(CASE_JSON))
def test_replay_survives_any_case_json(capsys, text):
    try:
        argument = text.decode()
    except UnicodeDecodeError:
        return  # a command-line argument is text
    if "\x00" in argument or not argument.lstrip().startswith("{"):
        argument = "{" + argument.replace("\x00", "")  # as JSON text, not a file name
    status = main(["replay", "--json", argument])
    assert status in (0, 1, 2)
    no_traceback(capsys, status)


def test_the_fuzzed_files_are_valid_to_begin_with(shards, tmp_path, capsys):
    paths = []
    for k, (csv_bytes, sidecar_bytes) in enumerate(shards, start=1):
        paths.append(tmp_path / f"in{k}.csv")
        paths[-1].write_bytes(csv_bytes)
        sidecar_path(paths[-1]).write_bytes(sidecar_bytes)
    assert main(["merge", *map(str, paths), "--out", str(tmp_path / "out.csv")]) == 0
    assert main(["report", str(paths[0])]) == 0
    assert main(["replay", "--json", CASE.decode()]) == 0
    assert Path(tmp_path / "out.csv").exists()
