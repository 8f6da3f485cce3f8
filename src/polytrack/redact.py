"""Recognising secrets so that they are never recorded or printed."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["REDACTED", "is_secret_name", "redact_argv", "redact_url", "redact_value"]

REDACTED: Final = "[REDACTED]"

# Matched against the words of a name (`AWS_SECRET_ACCESS_KEY` -> aws, secret, access, key;
# `apiKey` -> api, key), so `tokenizer` or `max_tokens` are not taken for secrets.
_SECRET_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "authorization",
        "cookie",
        "privatekey",
    }
)
_KEY_QUALIFIERS: Final = frozenset(
    {
        "api",
        "access",
        "private",
        "secret",
        "auth",
        "client",
        "master",
        "encryption",
        "signing",
        "license",
        "account",
        "service",
        "session",
        "ssh",
        "gpg",
    }
)
_WORD: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# The user info runs to the last `@` before the path: a password may hold an unencoded `@`.
_URL_WITH_USERINFO: Final = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s]*)@", re.IGNORECASE)
# Token prefixes of GitHub (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), GitLab (glpat-),
# Hugging Face (hf_) and others, which may stand alone as the user of a URL.
_TOKEN_PREFIX: Final = re.compile(r"(gh[pousr]_|github_pat_|glpat-|hf_|sk-|xox[abp]-)", re.I)


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """True for names like `DB_PASSWORD`, `api_key`, `hf.token`, `AWS_SECRET_ACCESS_KEY`.

    Example:
        >>> is_secret_name("OPENAI_API_KEY"), is_secret_name("tokenizer")
        (True, False)
    """
    words = _words(name)
    if any(word in _SECRET_WORDS for word in words):
        return True
    joined = ["".join(pair) for pair in itertools.pairwise(words)]
    if any(word in _SECRET_WORDS for word in joined):
        return True
    return any(
        word in ("key", "keys") and i > 0 and words[i - 1] in _KEY_QUALIFIERS
        for i, word in enumerate(words)
    )


def redact_url(text: str) -> str:
    """Drop the credentials of every `scheme://user:pass@host` in `text`, keep the user;
    drop the values of secret query parameters (`?private_token=`, `&sig=`).

    Example:
        >>> redact_url("postgres://bob:hunter2@db/x")
        'postgres://bob:[REDACTED]@db/x'
    """

    def strip(match: re.Match[str]) -> str:
        userinfo = match.group(2)
        if ":" in userinfo:
            return f"{match.group(1)}{userinfo.split(':', 1)[0]}:{REDACTED}@"
        # A lone long user part (https://<token>@github.com) is a token, not a user name.
        if len(userinfo) >= 20 or _TOKEN_PREFIX.match(userinfo):
            return f"{match.group(1)}{REDACTED}@"
        return match.group(0)

    text = _URL_WITH_USERINFO.sub(strip, text)
    # `https://host/repo?private_token=...`: credentials in the query string too.
    return _redact_query(text) if "?" in text else text


# Query parameters that carry credentials whatever their names' words say (S3 presigned
# URLs, Azure SAS tokens).
_SECRET_QUERY_NAMES: Final = frozenset(
    {"sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token"}
)
_QUERY_PARAM: Final = re.compile(r"([?&])([^=&#\s]+)=([^&#\s]*)")


def _redact_query(text: str) -> str:
    def strip(match: re.Match[str]) -> str:
        name = match.group(2)
        if is_secret_name(name) or name.lower() in _SECRET_QUERY_NAMES:
            return f"{match.group(1)}{name}={REDACTED}"
        return match.group(0)

    return _QUERY_PARAM.sub(strip, text)


def redact_value(name: str, value: object) -> object:
    """The value to record under `name`: REDACTED for secret names, URLs without passwords."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with secret values replaced by REDACTED.

    Covers `--token=abc`, `--password abc` (the next argument), `API_KEY=abc` and Hydra's
    `db.password=abc`, and credentials in URLs anywhere. A flag with a secret-looking name
    redacts the argument after it unless that one is an option itself: recording too
    little is the safe mistake.

    Example:
        >>> redact_argv(["train.py", "--token", "abc", "--lr=0.1", "DB_PASSWORD=x"])
        ['train.py', '--token', '[REDACTED]', '--lr=0.1', 'DB_PASSWORD=[REDACTED]']
    """
    clean: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next and not arg.startswith("-"):
            clean.append(REDACTED)
            secret_next = False
            continue
        secret_next = False
        name, sep, _ = arg.partition("=")
        option = name.startswith("-")
        if sep and is_secret_name(name.lstrip("-+~")):
            clean.append(f"{name}={REDACTED}")
        elif option and not sep and is_secret_name(name.lstrip("-")):
            clean.append(arg)
            secret_next = True
        else:
            clean.append(redact_url(arg) if "://" in arg else arg)
    return clean
