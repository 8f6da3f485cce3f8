"""`polytrack runs history`, `runs show`'s outputs and artifacts, and `polytrack
completion`, through `main(argv)`."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import polytrack
from _cli import cli
from polytrack.cli._format import sparkline


def _run(home: Path) -> str:
    run = polytrack.init(project="p", name="hist", dir=home, capture=False)
    for step in range(10):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        if step % 2 == 0:
            run.log_metrics({"acc": step / 10}, step=step)
    run.log_metrics({"loss": math.nan}, step=10)
    run.finish()
    return run.id


def test_history_table_is_aligned_by_step_with_a_sparkline(home: Path) -> None:
    _run(home)
    result = cli("runs", "history", "hist", "loss", "acc", "--home", str(home))
    assert result.code == 0, result.err
    spark_loss, spark_acc, blank, header, *rows = result.out.splitlines()
    assert spark_loss.startswith("loss  █") and "∅" in spark_loss and "(11 points)" in spark_loss
    assert spark_acc.startswith("acc   ▁") and spark_acc.split()[1].endswith("█")
    assert blank == "" and header.split() == ["step", "loss", "acc"]
    assert rows[0].split() == ["0", "1", "0"]
    assert rows[1].split() == ["1", "0.5", "-"]
    assert rows[-1].split() == ["10", "nan", "-"]


def test_history_csv_json_tail_head_every(home: Path) -> None:
    _run(home)
    base = ("runs", "history", "hist", "loss", "acc", "--home", str(home))
    rows = list(csv.reader(io.StringIO(cli(*base, "--csv", "--tail", "2").out)))
    assert rows == [["step", "loss", "acc"], ["9", "0.1", ""], ["10", "NaN", ""]]
    data = json.loads(cli(*base, "--json", "--head", "3").out)
    assert data["steps"] == [0, 1, 2]
    assert data["series"] == {"loss": [1.0, 0.5, 1 / 3], "acc": [0.0, None, 0.2]}
    every = json.loads(cli(*base, "--json", "--every", "5").out)
    assert every["steps"] == [0, 5, 10] and every["series"]["loss"][-1] == "NaN"


def test_history_of_a_missing_key_says_so(home: Path) -> None:
    _run(home)
    result = cli("runs", "history", "hist", "nope", "--home", str(home))
    assert result.code == 1 and "has no metric 'nope' (it has: acc, loss)" in result.err
    partly = cli("runs", "history", "hist", "loss", "nope", "--home", str(home))
    assert partly.code == 0 and "has no metric 'nope'" in partly.err


def test_sparkline_marks_nan_and_infinities_and_buckets_long_series() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0, math.nan, math.inf, -math.inf, 2.0]) == "▁∅↑↓█"
    assert sparkline([3.0, 3.0]) == "▄▄"
    assert len(sparkline([float(i) for i in range(1000)], width=40)) == 40
    assert sparkline([]) == ""


def test_show_lists_outputs_artifacts_and_models(home: Path, tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"w" * 2048)
    (tmp_path / "data.csv").write_bytes(b"x,y\n")
    run = polytrack.init(project="p", name="shown", dir=home, capture=False)
    run.log_outputs(acc=0.93, label="best")
    run.log_model(tmp_path / "model.pt", "net", framework="pytorch")
    run.log_artifact(tmp_path / "data.csv", role="input")
    run.finish()
    text = cli("runs", "show", "shown", "--home", str(home)).out
    outputs = text[text.index("\noutputs\n") :].splitlines()
    assert outputs[3].split() == ["acc", "0.93"] and outputs[4].split() == ["label", "best"]
    artifacts = text[text.index("\nartifacts\n") :].splitlines()
    assert artifacts[3].split()[:3] == ["data.csv", "file", "input"]
    models = text[text.index("\nmodels\n") :].splitlines()
    assert models[3].split() == ["net", "model", "output", "2.0", "KiB", "1", "pytorch"]
    record = json.loads(cli("runs", "show", "shown", "--json", "--home", str(home)).out)
    assert record["outputs"] == {"acc": 0.93, "label": "best"}
    assert [a["name"] for a in record["artifacts"]] == ["data.csv"]
    assert [m["name"] for m in record["models"]] == ["net"]
    assert record["models"][0]["framework"] == "pytorch" and "home" not in record["models"][0]


def test_completion_prints_each_shells_script() -> None:
    for shell, marker in (("bash", "complete "), ("zsh", "compdef"), ("fish", "complete ")):
        result = cli("completion", shell)
        assert result.code == 0 and marker in result.out and "polytrack" in result.out
    assert cli("completion", "tcsh").code == 2


def test_the_parser_completes_commands_and_run_ids(home: Path) -> None:
    """A shell's completion request, as the printed script makes it: `_ARGCOMPLETE` set,
    the command line in `COMP_LINE`, the answers on fd 8."""
    run = polytrack.init(project="p", name="c", dir=home, capture=False)
    run.finish()

    def complete(line: str) -> list[str]:
        read, write = os.pipe()
        env = {
            **os.environ,
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": "\n",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "POLYTRACK_HOME": str(home),
        }
        code = f"import os; os.dup2({write}, 8); from polytrack.cli import main; main()"
        subprocess.run(
            [sys.executable, "-c", code], env=env, pass_fds=(write,), check=False, timeout=60
        )
        os.close(write)
        with os.fdopen(read) as answers:
            return [word.strip() for word in answers.read().split("\n")]

    assert "rm" in complete("polytrack runs r")
    assert complete(f"polytrack runs show {run.id[:3]}") == [run.id]
    polytrack.delete_run(run.id, home=home)
    assert run.id not in complete("polytrack runs show ")  # not in the store any more
    assert run.id in complete("polytrack runs restore ")  # restore: from the trash
