"""Hundreds of secrets planted in every channel a run records; not one byte of any of
them reaches the store, while ordinary values are recorded as they are (issue 12 sec 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import polytrack
from _git import GIT_ENV, git
from _secrets_corpus import (
    Secret,
    named_secrets,
    ordinary_values,
    shaped_secrets,
    short_remote_token,
)
from polytrack.store.local import LocalStore

NAMED = named_secrets()
ORDINARY = ordinary_values()
ORDINARY_TEXTS = [v for v in ORDINARY.values() if isinstance(v, str)]


@attrs.define
class Plan:
    """What one run records, and where each planted secret went."""

    init: dict[str, Any] = attrs.field(factory=dict)
    more_params: dict[str, Any] = attrs.field(factory=dict)
    more_tags: list[str] = attrs.field(factory=list)
    stdout: list[str] = attrs.field(factory=list)
    stderr: list[str] = attrs.field(factory=list)
    outputs: dict[str, Any] = attrs.field(factory=dict)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    failure: str = ""
    argv: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    planted: list[tuple[str, str]] = attrs.field(factory=list)  # (channel/kind, core)

    def plant(self, channel: str, secret: Secret) -> None:
        self.planted += [(f"{channel}/{secret.kind}", core) for core in secret.cores]


_CHANNELS = (
    "param",
    "param-nested",
    "param-list",
    "log_params",
    "output",
    "output-nested",
    "metadata",
    "metadata-list",
    "stdout",
    "stderr",
    "env",
    "notes",
    "failure",
    "argv-equals",
    "argv-next",
    "argv-positional",
    "argv-multiline",
    "tag",
)


def build_plan(*, failure_one_line: bool) -> Plan:
    """Each channel gets secrets of its own (same shapes, other random parts), so that a
    leak names the channel it came through."""
    plan = Plan()
    fresh = {channel: shaped_secrets(seed=100 + i) for i, channel in enumerate(_CHANNELS)}

    def take(channel: str, *, one_line: bool | None = None) -> list[Secret]:
        chosen = [s for s in fresh[channel] if one_line is None or s.one_line == one_line]
        for secret in chosen:
            plan.plant(channel, secret)
        return chosen

    params: dict[str, Any] = {"ordinary": dict(ORDINARY)}
    for i, secret in enumerate(take("param")):
        params[f"cfg{i}"] = secret.text
    for i, secret in enumerate(take("param-nested")):
        params[f"nested{i}"] = {"inner": {"value": secret.text}}
    for i, secret in enumerate(take("param-list")):
        params[f"list{i}"] = ["plain", secret.text]
    for i, secret in enumerate(take("log_params")):
        plan.more_params[f"later{i}"] = secret.text
    for i, secret in enumerate(take("output")):
        plan.outputs[f"out{i}"] = secret.text
    for i, secret in enumerate(take("output-nested")):
        plan.outputs[f"deep{i}"] = {"a": [1, {"b": secret.text}]}
    for i, secret in enumerate(take("metadata")):
        plan.metadata[f"m{i}"] = secret.text
    for i, secret in enumerate(take("metadata-list")):
        plan.metadata[f"mlist{i}"] = [secret.text]
    plan.stdout += [f"step {i}: using {s.text} now" for i, s in enumerate(take("stdout"))]
    plan.stderr += [f"warning {i}: {s.text}" for i, s in enumerate(take("stderr"))]
    plan.env.update({f"PLANTED_{i}": s.text for i, s in enumerate(take("env"))})
    plan.init["notes"] = "Notes.\n" + "\n".join(f"- see {s.text}" for s in take("notes"))
    for i, secret in enumerate(take("argv-equals", one_line=True)):
        plan.argv.append(f"--opt{i}={secret.text}")
    for i, secret in enumerate(take("argv-next", one_line=True)):
        plan.argv += [f"--cfg{i}", secret.text]
    plan.argv += [s.text for s in take("argv-positional", one_line=True)]
    for i, secret in enumerate(take("argv-multiline", one_line=False)):
        plan.argv += [f"--blob{i}", secret.text]
    tags = take("tag", one_line=True)
    plan.more_tags += [f"t-{s.text}" for s in tags[2:]]
    plan.init["tags"] = ["baseline", f"x-{tags[0].text}"]
    plan.init["name"] = f"run-{tags[1].text}"
    failures = take("failure", one_line=failure_one_line)
    plan.failure = "could not connect: " + " | ".join(s.text for s in failures)

    pw = iter(NAMED)

    def named(channel: str) -> str:
        secret = next(pw)
        plan.plant(channel, secret)
        return secret.text

    params.update(
        {
            "password": named("param-name"),
            "db": {"pass": named("param-name")},
            "github_pat": named("param-name"),
            "auth": named("param-name"),
            "webhook_url": named("param-name"),
            "api": {"key": named("param-name")},
            "private_key": named("param-name"),
            "credentials_json": named("param-name"),
            "sentry_dsn": named("param-name"),
            "bearer": named("param-name"),
        }
    )
    plan.init["params"] = params
    plan.argv += [
        *("--github-pat", named("argv-name"), "--pat", named("argv-name")),
        *("-p", named("argv-name"), "--auth", named("argv-name")),
        *("--key", named("argv-name"), "--webhook", named("argv-name")),
        *("--bearer", named("argv-name"), "--credentials-json", named("argv-name")),
        *("--private-key", named("argv-name"), f"--token={named('argv-name')}"),
        f"DB_PASSWORD={named('argv-name')}",
        f"db.password={named('argv-name')}",
        *("--conn", f"postgresql://u:{named('argv-name')}@h/db"),
        f"--header=Authorization: token {named('argv-name')}",
        f"--password={named('argv-name')}",
    ]
    plan.env.update(
        {
            "TF_VAR_db_pass": named("env-name"),
            "POLYTRACK_BACKEND_USERNAME": named("env-name"),
            "GITHUB_PAT": named("env-name"),
            "SLACK_WEBHOOK_URL": named("env-name"),
            "SENTRY_DSN": named("env-name"),
            "OPENAI_KEY": named("env-name"),
            "MY_SERVICE_PASSWD": named("env-name"),
            "DATABASE_URL": f"postgres://app:{named('env-name')}@db/x",
            "AWS_SECRET_ACCESS_KEY": named("env-name"),
            "HF_TOKEN": named("env-name"),
        }
    )
    plan.init["notes"] += f"\npassword={named('notes-name')}; api_key: {named('notes-name')}"
    plan.stdout.append(f"DB_PASSWORD={named('stdout-name')}")
    plan.stderr.append(f'{{"client_secret": "{named("stderr-name")}"}}')
    plan.outputs["token"] = named("output-name")
    plan.argv += ["--lr", "3e-4", "--model", "bert-base-uncased", "--sort-key", "created_at"]
    plan.env.update({"MY_MODEL": "bert-base-uncased", "MY_DIGEST": str(ORDINARY["data_sha256"])})
    plan.outputs.update({k: v for k, v in ORDINARY.items() if k != "layers"})
    plan.metadata.update({k: v for k, v in ORDINARY.items() if k != "layers"})
    plan.stdout += [f"ordinary: {text}" for text in ORDINARY_TEXTS]
    plan.more_tags += ["bert-base-uncased", str(ORDINARY["data_sha256"])]
    return plan


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A repository whose remote carries a short token as its user."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    git(repo, "remote", "add", "origin", f"https://{short_remote_token()}@github.com/o/r.git")
    yield repo


_CHILD = textwrap.dedent(
    """
    import json, sys
    import polytrack

    plan = json.load(open(sys.argv[1]))
    run = polytrack.init(project="planted", **plan["init"])
    run.log_params(plan["more_params"])
    run.log_tags(plan["more_tags"])
    for line in plan["stdout"]:
        print(line)
    for line in plan["stderr"]:
        print(line, file=sys.stderr)
    run.log_outputs(**plan["outputs"])
    run.log_artifact(plan["artifact"], name="weights", metadata=plan["metadata"])
    with open(plan["run_id_file"], "w") as file:
        file.write(run.id)
    raise RuntimeError(plan["failure"])
    """
)


def stored(home: Path, planted: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The planted (channel, core) pairs found in any byte of any file under `home`."""
    blobs = [path.read_bytes() for path in home.rglob("*") if path.is_file()]
    assert blobs
    return [
        (where, core) for where, core in planted if any(core.encode() in blob for blob in blobs)
    ]


def channels(leaked: list[tuple[str, str]]) -> list[str]:
    return sorted({where for where, _ in leaked})


def index(home: Path, run_id: str) -> None:
    with LocalStore.open(home) as store:
        store.index_run(run_id)


def check_ordinary(run: polytrack.RunView, plan: Plan) -> None:
    """Every ordinary value is recorded exactly as given, in every channel."""
    assert run.params["ordinary.lr"] == ORDINARY["lr"]
    for key, value in ORDINARY.items():
        assert run.params[f"ordinary.{key}"] == value, key
    outputs = run.outputs
    artifact = run.artifact("weights")
    for key, value in ORDINARY.items():
        if key != "layers":
            assert outputs[key] == value, key
            assert artifact.metadata[key] == value, key
    assert {"bert-base-uncased", str(ORDINARY["data_sha256"])} <= set(run.tags)
    code = run.snapshot().code
    assert code is not None
    assert code.argv[-6:] == (
        "--lr",
        "3e-4",
        "--model",
        "bert-base-uncased",
        "--sort-key",
        "created_at",
    )
    environment = run.snapshot().environment
    assert environment is not None
    assert environment.variables["MY_MODEL"] == "bert-base-uncased"
    assert environment.variables["MY_DIGEST"] == ORDINARY["data_sha256"]
    logged = {line.text for line in run.logs()}
    assert {f"ordinary: {text}" for text in ORDINARY_TEXTS} <= logged


def test_no_planted_secret_reaches_the_store_from_a_script(tmp_path: Path, repo: Path) -> None:
    """A script run with secrets in argv, environment (allowlist `*`), params, tags,
    notes, name, outputs, artifact metadata, output, its failure and its git remote
    stores none of them, not in the run files nor in the index."""
    home = tmp_path / "home"
    plan = build_plan(failure_one_line=True)
    plan.planted.append(("git-remote/short-token", short_remote_token()))
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"\0" * 64)
    plan_file = tmp_path / "plan.json"
    run_id_file = tmp_path / "run-id"
    body = {**attrs.asdict(plan), "artifact": str(artifact), "run_id_file": str(run_id_file)}
    plan_file.write_text(json.dumps(body))
    script = tmp_path / "train.py"
    script.write_text(_CHILD)
    env = {
        **os.environ,
        **GIT_ENV,
        **plan.env,
        "POLYTRACK_HOME": str(home),
        "POLYTRACK_ENV_ALLOWLIST": "*",
    }
    done = subprocess.run(
        [sys.executable, str(script), str(plan_file), *plan.argv],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "RuntimeError" in done.stderr  # the terminal gets it all; the store does not
    run_id = run_id_file.read_text()
    index(home, run_id)

    leaked = stored(home, plan.planted)
    assert not leaked, f"{len(leaked)} of {len(plan.planted)} stored: {channels(leaked)}"
    assert len(plan.planted) >= 600

    run = polytrack.get_run(run_id, home=home)
    assert run.status == "failed"
    assert run.message is not None and "could not connect" in run.message
    git_state = run.snapshot().git
    assert git_state is not None and git_state.remote == "https://[REDACTED]@github.com/o/r.git"
    check_ordinary(run, plan)


def test_no_planted_secret_reaches_the_store_in_process(home: Path, tmp_path: Path) -> None:
    """The same in this process: output teed from wrapped streams on the caller's
    thread, and a failure closing `with run:` that quotes private keys and a
    service-account file."""
    plan = build_plan(failure_one_line=False)
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"\0" * 64)
    environ = {**os.environ, **plan.env, "POLYTRACK_HOME": str(home)}
    environ["POLYTRACK_ENV_ALLOWLIST"] = "*"
    run = polytrack.init(project="planted", environ=environ, **plan.init)
    with pytest.raises(RuntimeError), run:
        run.log_params(plan.more_params)
        run.log_tags(plan.more_tags)
        for line in plan.stdout:
            print(line)
        for line in plan.stderr:
            print(line, file=sys.stderr)
        run.log_outputs(**plan.outputs)
        run.log_artifact(artifact, name="weights", metadata=plan.metadata)
        raise RuntimeError(plan.failure)
    index(home, run.id)
    # argv belongs to the subprocess test; here it is pytest's.
    planted = [(w, c) for w, c in plan.planted if not w.startswith("argv")]
    leaked = stored(home, planted)
    assert not leaked, f"{len(leaked)} of {len(planted)} stored: {channels(leaked)}"
    view = polytrack.get_run(run.id, home=home)
    assert view.status == "failed"
    assert view.message is not None and view.message.startswith("RuntimeError: could not")
