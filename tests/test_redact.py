"""Secret detection for names and URLs."""

from __future__ import annotations

import pytest

from polytrack.redact import REDACTED, is_secret_name, redact_argv, redact_url, redact_value


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
