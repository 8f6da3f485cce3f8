"""Secret detection by names and by shapes, and what each kind of value keeps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from _secrets_corpus import Secret, ordinary_values, shaped_secrets
from polytrack import redact
from polytrack.capture.environment import selected_variables
from polytrack.errors import TrackingWarning
from polytrack.redact import (
    REDACTED,
    contains_secret,
    is_secret_name,
    redact_argv,
    redact_lines,
    redact_remote,
    redact_text,
    redact_url,
    redact_value,
)
from polytrack.settings import DEFAULT_ENV_ALLOWLIST

SHAPED = shaped_secrets()
ORDINARY = ordinary_values()
ORDINARY_TEXTS = [v for v in ORDINARY.values() if isinstance(v, str)]


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "DB_PASSWORD",
        "db.password",
        "passwd",
        "api_key",
        "apiKey",
        "OPENAI_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "hf.token",
        "HF_TOKEN",
        "github-token",
        "client_secret",
        "privateKey",
        "private_key",
        "ssh.key",
        "credentials",
        "Authorization",
        "session_key",
    ],
)
def test_secret_names(name: str) -> None:
    """Names that hold secrets are recognised whatever their case or separators."""
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "tokenizer",
        "max_tokens",
        "lr",
        "sort_key",
        "key_dim",
        "monkey",
        "author",
        "keyboard",
        "passes",
        "secretary_count",
        "num_keys",
    ],
)
def test_ordinary_names(name: str) -> None:
    """Ordinary hyperparameter names are left alone."""
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://bob:hunter2@db:5432/x", f"postgres://bob:{REDACTED}@db:5432/x"),
        (
            "https://ghp_aaaaaaaaaaaaaaaaaaaaaaaa@github.com/o/r",
            f"https://{REDACTED}@github.com/o/r",
        ),
        ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),
        (
            "see http://a:b@h1 and ftp://c:d@h2",
            f"see http://a:{REDACTED}@h1 and ftp://c:{REDACTED}@h2",
        ),
        ("no url here", "no url here"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    """Passwords and bare tokens in URLs are dropped; plain user names stay."""
    assert redact_url(text) == expected


def test_redact_value() -> None:
    """Secret names hide the whole value; other strings only lose URL credentials."""
    assert redact_value("api_key", "abc") == REDACTED
    assert redact_value("db", "mysql://u:p@h/d") == f"mysql://u:{REDACTED}@h/d"
    assert redact_value("lr", 0.1) == 0.1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train.py", "--lr", "0.1"], ["train.py", "--lr", "0.1"]),
        (["train.py", "--token=abc"], ["train.py", f"--token={REDACTED}"]),
        (
            ["train.py", "--token", "abc", "--lr", "1"],
            ["train.py", "--token", REDACTED, "--lr", "1"],
        ),
        (["t.py", "--password", "--verbose"], ["t.py", "--password", "--verbose"]),
        (["t.py", "--api-key", "sk-1"], ["t.py", "--api-key", REDACTED]),
        (["t.py", "--hf_token=x"], ["t.py", f"--hf_token={REDACTED}"]),
        (["t.py", "API_KEY=xyz"], ["t.py", f"API_KEY={REDACTED}"]),
        (["t.py", "db.password=hunter2"], ["t.py", f"db.password={REDACTED}"]),
        (["t.py", "+aws.secret_access_key=k"], ["t.py", f"+aws.secret_access_key={REDACTED}"]),
        (
            ["t.py", "--db", "postgres://bob:pw@h/x"],
            ["t.py", "--db", f"postgres://bob:{REDACTED}@h/x"],
        ),
        (["t.py", "--url=https://u:p@h"], ["t.py", f"--url=https://u:{REDACTED}@h"]),
        (
            ["t.py", "--tokenizer", "bert", "--max_tokens", "5"],
            ["t.py", "--tokenizer", "bert", "--max_tokens", "5"],
        ),
        (["t.py", "KEY_PATH=/x"], ["t.py", "KEY_PATH=/x"]),
        (["t.py", "--secret"], ["t.py", "--secret"]),
    ],
)
def test_redact_argv(argv: list[str], expected: list[str]) -> None:
    """Secret values in argv are redacted whatever the option style; the rest is kept."""
    assert redact_argv(argv) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:p@ss@host/r.git", f"https://user:{REDACTED}@host/r.git"),
        ("https://ghp_short12@github.com/o/r", f"https://{REDACTED}@github.com/o/r"),
        ("https://glpat-abc@gitlab.com/o/r", f"https://{REDACTED}@gitlab.com/o/r"),
        ("https://oauth2:xyz@gitlab.com/o/r", f"https://oauth2:{REDACTED}@gitlab.com/o/r"),
        ("https://bob@example.com/r", "https://bob@example.com/r"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("ssh://git@host/o/r", "ssh://git@host/o/r"),
        ("see https://a:b@h/x and mail c@d.org", f"see https://a:{REDACTED}@h/x and mail c@d.org"),
        ("https://h/r.git?private_token=abc", f"https://h/r.git?private_token={REDACTED}"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=s&X-Amz-Expires=60",
            f"https://b.s3.amazonaws.com/k?X-Amz-Signature={REDACTED}&X-Amz-Expires=60",
        ),
        (
            "https://a.blob.core.windows.net/c?sv=1&sig=xyz",
            f"https://a.blob.core.windows.net/c?sv=1&sig={REDACTED}",
        ),
        ("https://h/search?q=tokenizer&page=2", "https://h/search?q=tokenizer&page=2"),
    ],
)
def test_url_credentials_in_every_shape(url: str, expected: str) -> None:
    """Passwords holding `@`, short tokens with a known prefix: stripped; users kept."""
    assert redact_url(url) == expected


# -- issue 12 sec 5: names and shapes everywhere -------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "github_pat",
        "GITHUB_PAT",
        "pat",
        "auth",
        "basic_auth",
        "bearer",
        "webhook_url",
        "SLACK_WEBHOOK_URL",
        "db_pass",
        "TF_VAR_db_pass",
        "db.pw",
        "sentry_dsn",
        "jwt",
        "SharedAccessKey",
    ],
)
def test_more_secret_names(name: str) -> None:
    """Personal access tokens, auth, webhooks, DSNs and `*_pass` are secret names."""
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["patience", "pattern", "path", "passage", "pass_through", "bypass", "compass"]
)
def test_ordinary_names_that_contain_secret_words(name: str) -> None:
    """`patience`, `pattern`, `pass_through` hold no secret word of their own."""
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("name", "strict"),
    [("OPENAI_KEY", True), ("STRIPE_KEYS", True), ("POLYTRACK_BACKEND_USERNAME", True)],
)
def test_strict_names_for_the_environment(name: str, strict: bool) -> None:
    """In environment names `*_KEY` and `*_USERNAME` are credentials; in params they are not."""
    assert is_secret_name(name, strict=strict)
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "argv",
    [
        ["--github-pat", "hunter2"],
        ["--pat", "hunter2"],
        ["-p", "hunter2"],
        ["--auth", "hunter2"],
        ["--key", "hunter2"],
        ["--webhook", "hunter2"],
        ["--bearer", "hunter2"],
        ["--credentials-json", "hunter2"],
        [
            "--private-key",
            "-----BEGIN RSA PRIVATE KEY-----\nhunter2\n-----END RSA PRIVATE KEY-----",
        ],
        ["--conn", "Server=db;Database=x;User Id=u;Password=hunter2;"],
        ["--conn", "postgresql://u:hunter2@db/x"],
        ["--header=Authorization: Bearer hunter2hunter2"],
        ["--header", "Authorization: Basic aHVudGVyMjpodW50ZXIy"],
        ["--note=password=hunter2"],
        ["ghp_hunter2hunter2hunter2hunter2hunter2"],
        ["sk-proj-hunter2hunter2hunter2hunter2"],
        ["Authorization: Basic aHVudGVyMjpodW50ZXIy=="],
    ],
)
def test_argv_forms_of_the_issue(argv: list[str]) -> None:
    """Every argv form of issue 12 loses its secret, and keeps the option names."""
    clean = redact_argv(["train.py", *argv, "--lr", "0.1"])
    assert not any("hunter2" in arg or "aHVudGVy" in arg for arg in clean), clean
    assert clean[0] == "train.py" and clean[-2:] == ["--lr", "0.1"]
    assert len(clean) == len(argv) + 3


def test_argv_keeps_options_that_follow_and_ordinary_keys() -> None:
    """A secret flag followed by an option redacts nothing; `--sort-key` is no key."""
    argv = ["t.py", "--key", "--verbose", "--sort-key", "created_at", "-p", "-1"]
    assert redact_argv(argv) == [
        "t.py",
        "--key",
        "--verbose",
        "--sort-key",
        "created_at",
        "-p",
        REDACTED,
    ]


def test_redact_value_goes_into_lists_and_mappings() -> None:
    """Secrets in lists and nested mappings are found: URLs lose passwords, tokens go."""
    token = "ghp_" + "a1B2" * 9
    value = {"urls": ["postgres://bob:pw@h/x", token], "inner": {"password": "x", "n": 1}}
    assert redact_value("cfg", value) == {
        "urls": [f"postgres://bob:{REDACTED}@h/x", REDACTED],
        "inner": {"password": REDACTED, "n": 1},
    }
    assert redact_value("cfg", [0.1, "bert-base-uncased"]) == [0.1, "bert-base-uncased"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x9Kq2m@github.com/o/r.git", f"https://{REDACTED}@github.com/o/r.git"),
        ("https://bob:pw@h/o/r.git", f"https://bob:{REDACTED}@h/o/r.git"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git@host/o/r", "ssh://git@host/o/r"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ],
)
def test_redact_remote(url: str, expected: str) -> None:
    """A git remote's lone https user is a token however short; ssh logins stay."""
    assert redact_remote(url) == expected


def test_token_as_the_user_with_a_password() -> None:
    """`https://<token>:x-oauth-basic@github.com`: the user is the token."""
    url = "https://ghp_" + "a1B2" * 9 + ":x-oauth-basic@github.com/o/r"
    assert redact_url(url) == f"https://{REDACTED}@github.com/o/r"


@pytest.mark.parametrize("secret", SHAPED, ids=lambda s: s.kind)
def test_every_shape_is_redacted_in_text(secret: Secret) -> None:
    """Each planted shape loses every random part, in free text and as a value, and a
    second redaction changes nothing."""
    text = f"connecting with {secret.text} (retry 2)"
    clean = redact_text(text)
    assert not [core for core in secret.cores if core in clean], clean
    assert clean.startswith("connecting with ") and clean.endswith(" (retry 2)")
    assert redact_text(clean) == clean
    value = redact_value("x", secret.text)
    assert not [core for core in secret.cores if core in str(value)], value
    # A value holding a token is no hyperparameter; a URL keeps all but its password.
    assert value == REDACTED or secret.kind.startswith("url-")
    assert contains_secret(secret.text)


@pytest.mark.parametrize("value", ORDINARY_TEXTS)
def test_ordinary_values_are_kept(value: str) -> None:
    """Learning rates, paths, model names, digests, UUIDs, plain URLs: no false positive."""
    assert redact_text(value) == value
    assert redact_value("x", value) == value
    assert redact_argv(["t.py", "--x", value, f"--y={value}", value]) == [
        "t.py",
        "--x",
        value,
        f"--y={value}",
        value,
    ]
    assert not contains_secret(value)


def test_every_detect_secrets_plugin_is_used_or_left_out_for_a_reason() -> None:
    """A plugin added by a later detect-secrets fails here until it gets a decision."""
    import detect_secrets.plugins
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    shipped = {
        cls.__name__
        for cls in get_mapping_from_secret_type_to_class().values()
        if cls.__module__.startswith(detect_secrets.plugins.__name__)
    }
    used = {name for _, name in redact._PLUGINS}
    assert shipped == used | set(redact._PLUGINS_LEFT_OUT)
    assert not used & set(redact._PLUGINS_LEFT_OUT)


def test_plugins_are_loaded_only_for_strings_that_may_hold_a_shape() -> None:
    """Ordinary params, argv and notes never import detect-secrets (~110 ms); a token does."""
    code = textwrap.dedent(
        """
        import sys
        from polytrack.redact import redact_argv, redact_text, redact_value
        for value in sys.argv[2:]:
            redact_value("x", value)
            redact_text(f"note {value}")
        redact_argv(sys.argv[2:])
        print("detect_secrets" in sys.modules)
        redact_value("x", sys.argv[1])
        print("detect_secrets" in sys.modules)
        """
    )
    token = "AKIA" + "ABCDEFGHIJ0123456789"[:16]
    # Base64 of data looks like a token to the cheap test: detect-secrets decides there
    # (and keeps it, test_ordinary_values_are_kept).
    plain = [v for k, v in ORDINARY.items() if isinstance(v, str) and "b64" not in k]
    done = subprocess.run(
        [sys.executable, "-c", code, token, *plain],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["False", "True"]


def test_output_lines() -> None:
    """Output lines lose their secrets; a private key printed at once goes whole; lines
    without secrets come back as the same object (no copy on the print path)."""
    lines = ["epoch 1: loss 0.5", "saved /data/ckpt/model.pt"]
    assert redact_lines(lines) is lines
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nAoGCCqGSM49\n-----END EC PRIVATE KEY-----"
    clean = redact_lines(["key:", *pem.split("\n"), "done", "token=abc"])
    assert clean == ["key:", REDACTED, "done", f"token={REDACTED}"]


def test_without_detect_secrets_long_random_strings_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken detect-secrets install warns once and redacts every candidate run rather
    than record a token it can no longer recognise."""

    def broken(name: str) -> object:
        raise ImportError(f"no {name}")

    redact._detectors.cache_clear()
    monkeypatch.setattr(redact.importlib, "import_module", broken)
    try:
        with pytest.warns(TrackingWarning, match="detect-secrets"):
            clean = redact_text("key AKIAIOSFODNN7EXAMPLE and bert-base-uncased")
        assert clean == f"key {REDACTED} and bert-base-uncased"
    finally:
        redact._detectors.cache_clear()


def test_environment_with_every_variable_allowed() -> None:
    """With POLYTRACK_ENV_ALLOWLIST=* no secret is recorded: secret names (strictly) are
    dropped, secret shapes under innocent names recorded as REDACTED, the rest kept."""
    token = SHAPED[0].text
    environ = {
        "TF_VAR_db_pass": "hunter2",
        "POLYTRACK_BACKEND_USERNAME": "alice",
        "OPENAI_KEY": "k",
        "GITHUB_PAT": "p",
        "MY_SETTING": token,
        "DATABASE_URL": "postgres://app:hunter2@db/x",
        "MY_MODEL": "bert-base-uncased",
        "DIGEST": str(ORDINARY["data_sha256"]),
    }
    assert selected_variables(environ, ["*"]) == {
        "MY_SETTING": REDACTED,
        "DATABASE_URL": f"postgres://app:{REDACTED}@db/x",
        "MY_MODEL": "bert-base-uncased",
        "DIGEST": ORDINARY["data_sha256"],
    }


def test_default_allowlist_takes_tensorflow_variables_not_terraform_ones() -> None:
    """`TF_CPP_*` and TensorFlow's own switches are recorded; `TF_VAR_*` (Terraform) not."""
    environ = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_XLA_FLAGS": "--x", "TF_VAR_region": "eu"}
    assert selected_variables(environ, DEFAULT_ENV_ALLOWLIST) == {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_XLA_FLAGS": "--x",
    }
