"""Secret detection for names and URLs."""

from __future__ import annotations

import pytest

from polytrack.redact import REDACTED, is_secret_name, redact_url, redact_value


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
