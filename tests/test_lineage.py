"""Lineage: real runs that log data refs, artifacts and models, looked up by name, digest
and path, walked upstream and downstream, printed as a tree, JSON and DOT."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from attrs import frozen

import polytrack
from polytrack.cli import main
from polytrack.errors import AmbiguousRunError, InvalidInputError, RunNotFoundError
from polytrack.history import lineage as lineage_module
from polytrack.models import RunLinked
from polytrack.run import Run
from polytrack.store.index import SCHEMA_VERSION
from polytrack.store.local import INDEX_FILE, LocalStore

TRAIN, MODEL, PREDS = b"x,y\n1,2\n", b"weights-1", b"p\n0.5\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start(home: Path, name: str) -> Run:
    run = polytrack.init(dir=home, name=name, capture=False)
    assert isinstance(run, Run)
    return run


@frozen
class Chain:
    """data -> prepare -> model -> evaluate -> preds (and metrics), in one store."""

    home: Path
    train: Path  # the input file of `prepare`
    model: Path
    preds: Path
    prepare: str
    evaluate: str


@pytest.fixture
def chain(tmp_path: Path, home: Path) -> Chain:
    train = tmp_path / "train.csv"
    train.write_bytes(TRAIN)
    model = tmp_path / "model.bin"
    preds = tmp_path / "preds.csv"

    prepare = start(home, "prepare")
    prepare.log_data_ref("train", train)
    prepare.log_data_ref("train", train)  # logged twice: still one input
    model.write_bytes(MODEL)
    prepare.log_model(model, "model")
    prepare.finish()

    evaluate = start(home, "evaluate")
    evaluate.log_artifact(model, "model", kind="model", role="input")
    preds.write_bytes(PREDS)
    evaluate.log_data_ref("preds", preds, role="output")
    evaluate.log_metrics({"acc": 0.5}, step=0)
    evaluate.finish()
    return Chain(home, train, model, preds, prepare.id, evaluate.id)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- the index --------------------------------------------------------------------------


def test_index_keeps_what_each_run_consumed_and_produced(chain: Chain) -> None:
    """Data refs and artifacts become rows by run, with role, type, name, digest and path;
    the same input logged twice is one row."""
    with LocalStore.open(chain.home) as store:
        store.refresh()
        refs = store.refs(run_ids=[chain.prepare, chain.evaluate])
    rows = {(r.run_id, r.role, r.type, r.name, r.digest, r.path) for r in refs}
    assert rows == {
        (chain.prepare, "input", "data", "train", sha256(TRAIN), str(chain.train)),
        (chain.prepare, "output", "model", "model", sha256(MODEL), str(chain.model)),
        (chain.evaluate, "input", "model", "model", sha256(MODEL), str(chain.model)),
        (chain.evaluate, "output", "data", "preds", sha256(PREDS), str(chain.preds)),
    }
    assert len(refs) == 4


def test_an_index_of_the_old_schema_is_rebuilt_with_lineage(chain: Chain) -> None:
    """An index written before the lineage tables existed is emptied on open, so every
    run (finished ones too) is indexed again with its refs."""
    with LocalStore.open(chain.home) as store:
        store.refresh()
    db = sqlite3.connect(chain.home / INDEX_FILE)
    db.execute("DROP TABLE run_refs")
    db.execute("DROP TABLE run_links")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    db.commit()
    db.close()
    assert [run.name for run in lineage_module.consumers("train", home=chain.home)] == ["prepare"]
    db = sqlite3.connect(chain.home / INDEX_FILE)
    schema = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    assert schema == (str(SCHEMA_VERSION),)
    db.close()


# -- consumers and producers ------------------------------------------------------------


def test_consumers_by_name_digest_prefix_and_path(chain: Chain) -> None:
    """The same node is found by the name runs gave it, its digest, a digest prefix with
    or without `sha256:`, and its path on disk (hashed), as str or Path."""
    digest = sha256(MODEL)
    for ref in ("model", digest, digest[:15], digest[7:20], str(chain.model), chain.model):
        consumers = lineage_module.consumers(ref, home=chain.home)
        assert [run.id for run in consumers] == [chain.evaluate], ref
        producers = lineage_module.producers(ref, home=chain.home)
        assert [run.id for run in producers] == [chain.prepare], ref


def test_a_file_on_disk_is_looked_up_by_content_not_by_path(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy elsewhere with the same bytes is the same node; the recorded file changed
    since is not, and the error says so; once gone, `path:` finds what was recorded."""
    copy = tmp_path / "elsewhere" / "copy.csv"
    copy.parent.mkdir()
    copy.write_bytes(chain.train.read_bytes())
    monkeypatch.chdir(copy.parent)
    assert [r.id for r in lineage_module.consumers("copy.csv", home=chain.home)] == [chain.prepare]

    chain.train.write_bytes(b"x,y\n1,3\n")
    with pytest.raises(RunNotFoundError, match="changed since"):
        lineage_module.consumers(chain.train, home=chain.home)
    chain.train.unlink()
    found = lineage_module.consumers(f"path:{chain.train}", home=chain.home)
    assert [run.id for run in found] == [chain.prepare]


def test_unknown_and_ambiguous_targets_raise(chain: Chain, tmp_path: Path) -> None:
    """Nothing recorded: RunNotFoundError; a digest prefix of two digests: AmbiguousRunError;
    a run where data is expected, a bad depth or direction: InvalidInputError."""
    with pytest.raises(RunNotFoundError, match="names no recorded"):
        lineage_module.consumers("nothing-like-this", home=chain.home)
    with pytest.raises(RunNotFoundError, match="no run consumed or produced"):
        lineage_module.lineage("sha256:0000", home=chain.home)
    # Two contents whose digests start alike, found by counting.
    first: dict[str, bytes] = {}
    for number in range(100):
        data = str(number).encode()
        if sha256(data)[7] in first:
            pair = (first[sha256(data)[7]], data)
            break
        first[sha256(data)[7]] = data
    run = start(chain.home, "pair")
    for index, data in enumerate(pair):
        run.log_data_ref(f"part{index}", data)
    run.finish()
    with pytest.raises(AmbiguousRunError, match="recorded digests; give more"):
        lineage_module.lineage(sha256(pair[0])[:8], home=chain.home)
    with pytest.raises(InvalidInputError, match="is a run"):
        lineage_module.consumers(f"run:{chain.prepare}", home=chain.home)
    with pytest.raises(InvalidInputError, match="depth"):
        lineage_module.lineage("prepare", depth=-1, home=chain.home)
    with pytest.raises(InvalidInputError, match="direction"):
        lineage_module.lineage("prepare", direction="sideways", home=chain.home)


# -- walking the graph ------------------------------------------------------------------


def test_upstream_and_downstream_follow_the_chain_to_any_depth(chain: Chain) -> None:
    """Upstream of the evaluation: the model (1 edge), the run that made it (2), its data
    (3); downstream of the preparation: the model, the evaluation, its predictions."""
    model, train, preds = sha256(MODEL), sha256(TRAIN), sha256(PREDS)
    up = [lineage_module.upstream(chain.evaluate, depth=d, home=chain.home) for d in (1, 2, None)]
    assert set(up[0].nodes) == {model} and set(up[0].runs) == {chain.evaluate}
    assert set(up[1].nodes) == {model} and set(up[1].runs) == {chain.evaluate, chain.prepare}
    assert set(up[2].nodes) == {model, train} and preds not in up[2].nodes
    down = lineage_module.downstream("prepare", home=chain.home)
    assert set(down.nodes) == {model, preds} and set(down.runs) == {chain.prepare, chain.evaluate}
    relations = {(e.source, e.target, e.relation) for e in down.edges}
    assert relations == {
        (f"run:{chain.prepare}", model, "output"),
        (model, f"run:{chain.evaluate}", "input"),
        (f"run:{chain.evaluate}", preds, "output"),
    }
    assert down.nodes[model].type == "model" and down.nodes[model].names == ("model",)


def test_lineage_of_a_dataset_prints_a_tree(chain: Chain) -> None:
    """The tree of the input file runs down through every run and product to the end."""
    tree = polytrack.lineage(str(chain.train), home=chain.home).render_tree()
    model, preds = sha256(MODEL)[:19], sha256(PREDS)[:19]
    assert tree.splitlines() == [
        f'data "train"  {sha256(TRAIN)[:19]}  {chain.train}',
        "├── upstream",
        "│   └── none",
        "└── downstream",
        f"    └── consumed by run {chain.prepare}  prepare  (succeeded)",
        f'        └── produced model "model"  {model}  {chain.model}',
        f"            └── consumed by run {chain.evaluate}  evaluate  (succeeded)",
        f'                └── produced data "preds"  {preds}  {chain.preds}',
    ]


def test_a_run_consuming_its_own_output_does_not_loop(tmp_path: Path, home: Path) -> None:
    """A file a run both reads and writes is one node on both sides: the walk ends, and
    the tree marks the repeat instead of expanding it again."""
    state = tmp_path / "state.json"
    state.write_text("{}")
    run = start(home, "loop")
    run.log_data_ref("state", state)
    run.log_data_ref("state", state, role="output")
    run.finish()
    graph = lineage_module.lineage(run.id, home=home)
    assert len(graph.nodes) == 1 and set(graph.runs) == {run.id}
    tree = graph.render_tree()
    assert "(see above)" in tree and len(tree.splitlines()) < 10


def test_a_reproduction_is_linked_to_the_run_it_reproduces(chain: Chain, home: Path) -> None:
    """A `RunLinked` event links the runs both ways: the original is upstream of the
    reproduction, the reproduction downstream of the original."""
    again = start(home, "again")
    again._writer.append_event(RunLinked(run_id=chain.prepare, relation="reproduces"))
    again.finish()
    up = lineage_module.upstream(again.id, home=home)
    assert (f"run:{chain.prepare}", f"run:{again.id}", "reproduces") in {
        (e.source, e.target, e.relation) for e in up.edges
    }
    assert sha256(TRAIN) in up.nodes  # and on through the original's inputs
    down = lineage_module.downstream(chain.prepare, depth=1, home=home)
    assert again.id in down.runs
    assert f"reproduced by run {again.id}  again" in down.render_tree()


def test_json_and_dot_exports_hold_the_whole_graph(chain: Chain, home: Path) -> None:
    """JSON parses with every edge's ends among the runs and nodes; DOT declares every
    node once, every edge between declared nodes, and escapes quotes in names."""
    odd = chain.train.parent / "odd.txt"
    odd.write_text("odd")
    run = start(home, 'say "hi"')
    run.log_data_ref('the "odd" one', odd)
    run.finish()
    for target in (chain.evaluate, run.id):
        graph = polytrack.lineage(target, home=home)
        data = json.loads(graph.to_json())
        keys = {f"run:{r['id']}" for r in data["runs"]} | {n["digest"] for n in data["nodes"]}
        assert data["edges"] and all({e["source"], e["target"]} <= keys for e in data["edges"])
        assert data["roots"] == [f"run:{target}"]

        lines = graph.to_dot().splitlines()
        assert lines[0] == "digraph lineage {" and lines[-1] == "}"
        quoted = r'"((?:[^"\\]|\\.)*)"'
        declared, ends = [], []
        for line in lines[1:-1]:
            edge = re.fullmatch(
                rf"  {quoted} -> {quoted} \[label={quoted}(, style=dashed)?\];", line
            )
            node = re.fullmatch(rf"  {quoted} \[shape=\w+, (penwidth=2, )?label={quoted}\];", line)
            setting = re.fullmatch(r"  (rankdir=LR|node \[fontname=\"Helvetica\"\]);", line)
            assert edge or node or setting, line
            if node:
                declared.append(node.group(1))
            if edge:
                ends += [edge.group(1), edge.group(2)]
        assert sorted(declared) == sorted(keys) and set(ends) <= set(declared)
    assert r"\"odd\"" in graph.to_dot()


def test_a_name_shared_by_a_run_and_data_needs_a_prefix(tmp_path: Path, home: Path) -> None:
    """Without a prefix a run wins; `name:` picks the data, every version of it."""
    for version in (b"v1", b"v2"):
        path = tmp_path / "vocab.txt"
        path.write_bytes(version)
        run = start(home, "vocab")
        run.log_data_ref("vocab", path, role="output")
        run.finish()
    with pytest.raises(AmbiguousRunError):
        lineage_module.lineage("vocab", home=home)  # two runs are called "vocab"
    graph = lineage_module.lineage("name:vocab", home=home)
    assert sorted(graph.roots) == sorted([sha256(b"v1"), sha256(b"v2")])
    assert len(graph.runs) == 2


def test_public_functions_stay_callable_after_their_modules_load() -> None:
    """`polytrack.lineage` and `polytrack.compare` are functions even once the modules
    defining them are imported (a submodule of the same name would shadow them)."""
    importlib.import_module("polytrack.history.lineage")
    importlib.import_module("polytrack.history.compare")
    assert polytrack.lineage is lineage_module.lineage
    assert callable(polytrack.compare)
    assert polytrack.compare.__module__ == "polytrack.history.compare"


# -- the command ------------------------------------------------------------------------


def test_cli_prints_the_tree_json_and_dot(chain: Chain) -> None:
    """`polytrack lineage` prints the tree by default, and JSON or DOT on request."""
    home = ("--home", str(chain.home))
    code, out, _ = cli("lineage", "evaluate", "--direction", "up", *home)
    assert code == 0
    assert out.splitlines()[:3] == [
        f"run {chain.evaluate}  evaluate  (succeeded)",
        "└── upstream",
        f'    └── consumed model "model"  {sha256(MODEL)[:19]}  {chain.model}',
    ]
    code, out, _ = cli("lineage", str(chain.model), "--format", "json", "--depth", "1", *home)
    assert code == 0
    assert {run["name"] for run in json.loads(out)["runs"]} == {"prepare", "evaluate"}
    code, out, _ = cli("lineage", "name:preds", "--format", "dot", *home)
    assert code == 0 and out.startswith("digraph lineage {")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("lineage", "no-such-thing"), 3),
        (("lineage", "prepare", "--depth", "-1"), 2),
        (("lineage", "prepare", "--format", "png"), 2),
    ],
)
def test_cli_errors_become_exit_codes(chain: Chain, argv: tuple[str, ...], expected: int) -> None:
    """Nothing found exits 3; a bad option value is a usage error, exit 2."""
    code, out, err = cli(*argv, "--home", str(chain.home))
    assert code == expected and not out and err
