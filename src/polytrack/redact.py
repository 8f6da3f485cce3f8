"""Recognising secrets so that they are never recorded or printed.

Two kinds of evidence, applied to everything a run records (params, argv, environment,
notes, tags, names, outputs, artifact metadata, failure messages, git remotes, output):

- **names**: a value under `DB_PASSWORD`, `api_key`, `hf.token`, `--github-pat` is a
  secret whatever it looks like (`is_secret_name`); in free text the same goes for
  `password=...`, `"private_key": "..."` and `Authorization: Bearer ...`.
- **shapes**: a value that looks like a credential is a secret whatever its name. The
  shapes are detect-secrets' regex plugins (AWS, GitHub, GitLab, Slack, Stripe, JWT,
  private keys, Azure storage keys, ...: `_PLUGINS`), plus a few narrow rules of our own
  where it has none (`sk-` keys of OpenAI and Anthropic, `hf_` and `github_pat_` tokens,
  whole PEM blocks, bearer tokens), and URL credentials (`redact_url`). Its
  high-entropy plugins are left out on purpose: hashes of data, git SHAs and base64 of
  small data are high-entropy too, and must stay readable.

Importing detect-secrets costs ~110 ms (it imports `requests`), more than a whole
`init()`. So a cheap test (`_may_hold_shape`: long random-looking runs, or one of the
fixed anchors of the plugins' patterns, such as `eyJ` or `xox`) decides whether a string
needs the plugins at all; ordinary params (learning rates, paths, model names, hex
digests, UUIDs) never do, and a run that records only those never imports it. The
import is done inside the fork gate (`polytrack._forkgate`): a fork meanwhile waits for it.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Final

from polytrack import _forkgate
from polytrack.errors import TrackingWarning

__all__ = [
    "REDACTED",
    "contains_secret",
    "is_secret_name",
    "redact_argv",
    "redact_lines",
    "redact_remote",
    "redact_text",
    "redact_url",
    "redact_value",
]

REDACTED: Final = "[REDACTED]"

# -- names ----------------------------------------------------------------------------------

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
        "auth",
        "bearer",
        "cookie",
        "privatekey",
        "webhook",
        "webhooks",
        "dsn",
        "jwt",
    }
)
# Words that name a secret only at the end of a name: `db_pass`, `TF_VAR_db_pass`,
# `--github-pat`, while `pass_through` or `pat_size` stay ordinary.
_LAST_SECRET_WORDS: Final = frozenset({"pass", "pw", "pat"})
# In environment variable names, where no ordinary meaning competes, `*_KEY` is a key
# (`OPENAI_KEY`) and a user name half a credential (`POLYTRACK_BACKEND_USERNAME`); in
# params and options `sort_key` is a hyperparameter.
_STRICT_LAST_WORDS: Final = frozenset({"key", "keys", "username"})
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
        "shared",
    }
)
_WORD: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


@functools.lru_cache(maxsize=4096)  # the same param, option and variable names recur
def is_secret_name(name: str, *, strict: bool = False) -> bool:
    """True for names like `DB_PASSWORD`, `api_key`, `hf.token`, `AWS_SECRET_ACCESS_KEY`.

    Args:
        name: a param, option or variable name, in any case and with any separators.
        strict: also `*_KEY` and `*_USERNAME`: for environment variables, where such
            names hold credentials; params keep `sort_key`.

    Example:
        >>> is_secret_name("OPENAI_API_KEY"), is_secret_name("tokenizer")
        (True, False)
    """
    words = _words(name)
    if not words:
        return False
    if any(word in _SECRET_WORDS for word in words):
        return True
    if words[-1] in _LAST_SECRET_WORDS or (strict and words[-1] in _STRICT_LAST_WORDS):
        return True
    joined = ["".join(pair) for pair in itertools.pairwise(words)]
    if any(word in _SECRET_WORDS for word in joined):
        return True
    return any(
        word in ("key", "keys") and i > 0 and words[i - 1] in _KEY_QUALIFIERS
        for i, word in enumerate(words)
    )


# -- URLs -----------------------------------------------------------------------------------

# The user info runs to the last `@` before the path: a password may hold an unencoded `@`.
_URL_WITH_USERINFO: Final = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s]*)@", re.IGNORECASE)
# Token prefixes of GitHub (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), GitLab (glpat-),
# Hugging Face (hf_) and others, which may stand alone as the user of a URL.
_TOKEN_PREFIX: Final = re.compile(r"(gh[pousr]_|github_pat_|glpat-|hf_|sk-|xox[abp]-)", re.I)


def _token_like_user(user: str) -> bool:
    # A lone long user part (https://<token>@github.com) is a token, not a user name.
    return len(user) >= 20 or bool(_TOKEN_PREFIX.match(user))


def redact_url(text: str) -> str:
    """Drop the credentials of every `scheme://user:pass@host` in `text`, keep the user;
    drop the values of secret query parameters (`?private_token=`, `&sig=`).

    A user part that is itself a token (`https://<token>@github.com`,
    `https://<token>:x-oauth-basic@github.com`) goes too.

    Example:
        >>> redact_url("postgres://bob:hunter2@db/x")
        'postgres://bob:[REDACTED]@db/x'
    """

    def strip(match: re.Match[str]) -> str:
        userinfo = match.group(2)
        user, colon, _ = userinfo.partition(":")
        if _token_like_user(user):
            return f"{match.group(1)}{REDACTED}@"
        if colon:
            return f"{match.group(1)}{user}:{REDACTED}@"
        return match.group(0)

    text = _URL_WITH_USERINFO.sub(strip, text)
    # `https://host/repo?private_token=...`: credentials in the query string too.
    return _redact_query(text) if "?" in text else text


def redact_remote(url: str) -> str:
    """A git remote as recorded: `redact_url`, and any lone user of an http(s) URL
    dropped too. Git over https has no use for a user name without a password other
    than carrying a token, short ones included (`https://SHORTTOKEN@host/o/r`); ssh
    URLs (`ssh://git@host`, `git@host:o/r`) keep their login.

    Example:
        >>> redact_remote("https://x9Kq2m@github.com/o/r.git")
        'https://[REDACTED]@github.com/o/r.git'
    """
    url = redact_url(url)
    match = _URL_WITH_USERINFO.match(url)
    if match is None or not match.group(1).lower().startswith(("http", "ftp")):
        return url
    if ":" in match.group(2) or match.group(2) == REDACTED:
        return url  # user:[REDACTED] already
    return f"{match.group(1)}{REDACTED}@{url[match.end() :]}"


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


# -- shapes ---------------------------------------------------------------------------------


class _Lazy:
    """A regular expression compiled on first use: most texts are let through by the
    prefilters of `_secret_spans` and never need it, and compiling all of them at
    import would cost `init()` about a millisecond."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern, self._flags = pattern, flags
        self._regex: re.Pattern[str] | None = None

    def get(self) -> re.Pattern[str]:
        if self._regex is None:
            self._regex = re.compile(self._pattern, self._flags)
        return self._regex


# detect-secrets' plugins used (module, class). Every plugin it ships is here or in
# _PLUGINS_LEFT_OUT (a test keeps it so), so a new one gets a decision.
_PLUGINS: Final = (
    ("artifactory", "ArtifactoryDetector"),
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("cloudant", "CloudantDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("ibm_cloud_iam", "IbmCloudIamDetector"),
    ("ibm_cos_hmac", "IbmCosHmacDetector"),
    ("jwt", "JwtTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("npm", "NpmDetector"),
    ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("softlayer", "SoftlayerDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)
_PLUGINS_LEFT_OUT: Final = {
    "Base64HighEntropyString": "base64 of data is high-entropy: false positives",
    "HexHighEntropyString": "sha256 digests and git SHAs are high-entropy hex",
    "KeywordDetector": "assignments in source code; names are judged by is_secret_name",
    "IPPublicDetector": "an IP address is not a credential",
}

# Our own rules, where detect-secrets has no plugin or catches less than the secret; each
# behind the literals one of which every match holds: a text runs a pattern only where it
# holds one.
_OWN_SHAPES: Final = (
    # The whole block, not only its BEGIN line (all that PrivateKeyDetector matches); an
    # unterminated block runs to the end. `\\n` escapes of JSON (service-account files)
    # are inside the span all the same.
    (
        ("-----BEGIN",),
        _Lazy(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
            r".*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
    ),
    (("PuTTY-User-Key-File-",), _Lazy(r"PuTTY-User-Key-File-\d.*", re.DOTALL)),
    # OpenAI (sk-proj-..., sk-svcacct-...) and Anthropic (sk-ant-...) keys; detect-secrets
    # knows only OpenAI's legacy keys holding "T3BlbkFJ".
    (("sk-",), _Lazy(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}")),
    (("hf_",), _Lazy(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")),  # Hugging Face
    (("github_pat_",), _Lazy(r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,}")),
    # Classic GitHub tokens shorter than the 36 characters detect-secrets requires.
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        _Lazy(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{16,}"),
    ),
    # npm (outside an .npmrc line), Google API and Databricks keys: no plugin.
    (("npm_",), _Lazy(r"(?<![A-Za-z0-9])npm_[A-Za-z0-9]{36}")),
    (("AIza",), _Lazy(r"(?<![A-Za-z0-9])AIza[A-Za-z0-9_-]{35}")),
    (("dapi",), _Lazy(r"(?<![A-Za-z0-9])dapi[0-9a-f]{32}")),
    (
        ("earer ", "EARER "),
        _Lazy(r"(?<=[Bb]earer )[A-Za-z0-9._~+/=-]{8,}|(?<=BEARER )[A-Za-z0-9._~+/=-]{8,}"),
    ),
)
_OWN_GUARDS: Final = tuple(guard for guards, _ in _OWN_SHAPES for guard in guards)
# No shape, ours or a plugin's, matches fewer characters (Slack's `xoxb-1-a`).
_SHORTEST_SHAPE: Final = 8

# The cheap test before the plugins: a run of 16+ letters and digits (every token shape
# has one: AWS key ids, GitHub, Stripe, Twilio, JWT bodies) that is not plain lower- or
# upper-case hex (digests, SHAs, UUID parts, which no plugin matches)...
_RANDOM_RUN: Final = re.compile(r"[A-Za-z0-9]{16,}")
_HEX: Final = re.compile(r"[0-9a-f]+|[0-9A-F]+")
# ... or the fixed parts of the plugins' patterns whose random part may be short, hex or
# broken by `-`, `_`, `/` (JWT, Slack, GitLab, SendGrid, Square, PyPI, Telegram,
# Mailchimp, npm, Artifactory, Azure, Cloudant, SoftLayer, private keys). BasicAuth needs
# no anchor: the callers strip URL credentials first (`redact_url`), all that it matches.
_ANCHORS: Final = (
    "eyJ",
    "hooks.slack.com",
    "PRIVATE KEY",
    "PuTTY",
    "_authToken",
    "AccountKey",
    "GR1348941",
    "SG.",
    "sq0",
    "pypi-",
    *("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glcbt-", "glimt-", "glptt-"),
    *("glagent-", "gloas-"),
)
_LOWER_ANCHORS: Final = ("xox", "cloudant", "softlayer")  # case-insensitive patterns
# Anchors with a regex: the literal first, then the pattern.
_GUARDED_ANCHORS: Final = (
    ("-us", _Lazy(r"-us\d")),  # Mailchimp
    ("AKC", _Lazy(r"(?:^|[\s=:\"])AKC[A-Za-z0-9]{10}")),  # Artifactory
    ("AP", _Lazy(r"(?:^|[\s=:\"])AP[0-9A-F][A-Za-z0-9]{8}")),
)
_TELEGRAM: Final = _Lazy(r"[0-9]{8}:")
# ... or a long run, hex included, beside an assignment to a key-ish word (the keyword
# plugins: IBM Cloud IAM, IBM COS HMAC, SoftLayer, Cloudant) or beside "aws" (AWS secret
# access keys). Paths such as `/data/tokenizers/...` assign nothing.
_KEY_WORDS: Final = ("key", "pw", "pass", "token", "aws")
_KEYWORD: Final = _Lazy(r"(?:key|pwd|pw|password|pass|token)[\"']?\]?[ \t]*[=: ]|aws")
_LONG_RUN: Final = _Lazy(r"[A-Za-z0-9_+/-]{20,}")

# `name=value`, `name: value`, `"name": "value"` in free text; the value is found apart.
_ASSIGNMENT: Final = _Lazy(r"(?<![\w.])([A-Za-z_][\w.-]*)([\"']?)[ \t]*(:=|=>|=|:)(?!//)")
# Every secret name holds one of these: a text without any needs no name looked at.
_HINTS: Final = (
    "pass",
    "pw",
    "secret",
    "token",
    "key",
    "auth",
    "cred",
    "cookie",
    "bearer",
    "hook",
    "dsn",
    "jwt",
    "pat",
    "user",
)
_SCHEME: Final = _Lazy(r"[ \t]*(?:Bearer|Basic|Token|Digest)[ \t]+", re.IGNORECASE)
_QUOTED: Final = _Lazy(r"[ \t]*(\"(?:[^\"\\]|\\.)*\"|'[^']*')")
_BARE: Final = _Lazy(r"[ \t]*([^\s\"',;&]+)")

Span = tuple[int, int]


def _may_hold_shape(text: str, lower: str) -> bool:
    """Whether any detect-secrets plugin could match in `text` (a cheap superset);
    `lower` is `text.lower()`."""
    if any(anchor in text for anchor in _ANCHORS):
        return True
    if any(anchor in lower for anchor in _LOWER_ANCHORS):
        return True
    if any(guard in text and regex.get().search(text) for guard, regex in _GUARDED_ANCHORS):
        return True
    if ":" in text and _TELEGRAM.get().search(text):
        return True
    if _random_run(text):
        return True
    return _KEYWORD.get().search(lower) is not None and _LONG_RUN.get().search(text) is not None


def _random_run(text: str) -> bool:
    return any(not _HEX.fullmatch(m.group()) for m in _RANDOM_RUN.finditer(text))


def _alternation(words: Iterable[str]) -> re.Pattern[str]:
    # Literals only: the regex engine then skips every position whose character starts
    # none of them, one pass for all (`any(w in text ...)` costs a pass each).
    return re.compile("|".join(re.escape(word) for word in words))


# The prefilters of _secret_spans: a text none of which finds holds no secret.
_LOWER_HINT: Final = _alternation((*_HINTS, *_LOWER_ANCHORS, *_KEY_WORDS))  # on lower()
_SHAPE_HINT: Final = _alternation(
    (*_OWN_GUARDS, *_ANCHORS, *(guard for guard, _ in _GUARDED_ANCHORS))
)
_RUN_HINT: Final = re.compile(r"[A-Za-z0-9]{16,}|[0-9]{8}:")


@functools.cache
def _detectors() -> tuple[tuple[Any, re.Pattern[str]], ...] | None:
    """Each plugin's instance and patterns; None where detect-secrets cannot be imported
    (a broken install: the caller then redacts every candidate run)."""
    try:
        # Inside the fork gate: the first text shaped like a token may come on the output
        # reader's thread, at the instant a DataLoader forks its workers, and a child must
        # not inherit detect-secrets' (or requests') import half done.
        with _forkgate.held():
            plugins = [
                getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)()
                for module, name in _PLUGINS
            ]
    except Exception as exc:  # never raise into the caller: it is recording
        warnings.warn(
            f"polytrack cannot load detect-secrets ({exc!r}): redacting every long "
            "random-looking string instead",
            TrackingWarning,
            stacklevel=2,
        )
        return None
    return tuple((plugin, regex) for plugin in plugins for regex in plugin.denylist)


def _plugin_spans(text: str) -> list[Span]:
    detectors = _detectors()
    if detectors is None:
        return [m.span() for m in _LONG_RUN.get().finditer(text) if not _HEX.fullmatch(m.group())]
    spans: list[Span] = []
    for plugin, regex in detectors:
        for match in regex.finditer(text):
            # The plugin's own judgement of its match (JWT checks that the parts decode).
            if not any(plugin.analyze_string(match.group())):
                continue
            # The secret's group where the pattern has one (the value of an assignment),
            # else the whole match: GitHub's group is only the "ghp" prefix.
            groups = [
                match.span(i)
                for i in range(1, (regex.groups or 0) + 1)
                if match.group(i) is not None and len(match.group(i)) >= 8
            ]
            spans.extend(_whole_token(text, span) for span in groups or [match.span()])
    return spans


_TOKEN_BODY: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+/")
_TOKEN_CHARS: Final = _TOKEN_BODY | frozenset("=.-")


def _whole_token(text: str, span: Span) -> Span:
    """`span` grown to the whole token around it: some patterns stop short of the end
    (JWT's lazy last part leaves the signature out). Backwards not past `=`, `-` or `.`,
    which keeps `--key=` and `t-` in front of a token."""
    start, end = span
    while start > 0 and text[start - 1] in _TOKEN_BODY:
        start -= 1
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    return start, end


def _assignment_spans(text: str, strict: bool) -> list[Span]:
    spans: list[Span] = []
    for match in _ASSIGNMENT.get().finditer(text):
        if not is_secret_name(match.group(1), strict=strict):
            continue
        at = match.end()
        scheme = _SCHEME.get().match(text, at)
        if scheme is not None:
            at = scheme.end()
        quoted = _QUOTED.get().match(text, at)
        if quoted is not None:
            start, end = quoted.span(1)
            start, end = start + 1, end - 1
        else:
            bare = _BARE.get().match(text, at)
            if bare is None:
                continue
            start, end = bare.span(1)
        if end > start and text[start:end] != REDACTED:
            spans.append((start, end))
    return spans


def _secret_spans(text: str, *, strict: bool = False) -> list[Span]:
    """Where the secrets of `text` are, overlapping spans merged, in order.

    On the print path in wrap mode: a line with no hint of a secret costs three
    regular-expression passes and no more (~3 us).
    """
    spans: list[Span] = []
    lower = text.lower()
    hinted = _LOWER_HINT.search(lower) is not None
    if hinted and any(hint in lower for hint in _HINTS):
        spans.extend(_assignment_spans(text, strict))
    if len(text) < _SHORTEST_SHAPE:
        return _merge(spans)
    if _SHAPE_HINT.search(text):
        for guards, regex in _OWN_SHAPES:
            if any(guard in text for guard in guards):
                spans.extend(m.span() for m in regex.get().finditer(text))
    elif not hinted and not any(
        m.group().endswith(":") or not _HEX.fullmatch(m.group()) for m in _RUN_HINT.finditer(text)
    ):
        return spans
    if _may_hold_shape(text, lower):
        spans.extend(_plugin_spans(text))
    return _merge(spans)


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _replace(text: str, spans: Sequence[Span]) -> str:
    pieces: list[str] = []
    at = 0
    for start, end in spans:
        pieces += [text[at:start], REDACTED]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


def redact_text(text: str, *, strict: bool = False) -> str:
    """`text` with every secret in it replaced by REDACTED, the rest kept: for notes,
    tags, names, failure messages, argv and output lines.

    Args:
        text: free text.
        strict: judge `name=value` pairs by `is_secret_name(name, strict=True)`.

    Example:
        >>> redact_text("retry with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc")
        'retry with Authorization: Bearer [REDACTED]'
    """
    if "://" in text:
        text = redact_url(text)
    spans = _secret_spans(text, strict=strict)
    return _replace(text, spans) if spans else text


def contains_secret(text: str) -> bool:
    """Whether `text` holds a secret that `redact_text` would replace.

    Example:
        >>> contains_secret("ghp_" + "a1B2" * 9), contains_secret("bert-base-uncased")
        (True, False)
    """
    return redact_url(text) != text or bool(_secret_spans(text))


def redact_lines(lines: Sequence[str]) -> Sequence[str]:
    """Output lines with their secrets replaced; the same object when there are none.

    A private key printed at once spans lines: the batch is redacted as one text then.
    """
    if any("-----BEGIN" in line for line in lines):
        text = "\n".join(lines)
        clean = redact_text(text)
        return lines if clean == text else clean.split("\n")
    out: list[str] | None = None
    for i, line in enumerate(lines):
        clean = redact_text(line)
        if clean != line:
            if out is None:
                out = list(lines)
            out[i] = clean
    return lines if out is None else out


def redact_value(name: str, value: object, *, strict: bool = False) -> object:
    """The value to record under `name`: REDACTED for secret names and for strings that
    hold a secret's shape (a value holding a token is no hyperparameter); URLs lose
    their passwords. Lists and mappings are redacted item by item.

    Example:
        >>> redact_value("db", ["postgres://bob:pw@h/x", "ghp_" + "a1B2" * 9])
        ['postgres://bob:[REDACTED]@h/x', '[REDACTED]']
    """
    if is_secret_name(name, strict=strict):
        return REDACTED
    if isinstance(value, str):
        if "://" in value:
            value = redact_url(value)
        return REDACTED if _secret_spans(value) else value
    if isinstance(value, list):
        return [redact_value(name, item, strict=strict) for item in value]
    if isinstance(value, dict):
        return {
            key: redact_value(f"{name}.{key}", item, strict=strict) for key, item in value.items()
        }
    return value


# -- argv -----------------------------------------------------------------------------------

# What may follow a secret option without being its value: another option (`--verbose`,
# `-v`), not a negative number or a PEM block's dashes.
_OPTION: Final = re.compile(r"--?[A-Za-z][\w.-]*(?:=.*)?", re.DOTALL)
# The name of `--name=value`, `--name value`, `NAME=value`, Hydra's `+db.password=value`.
_ARG_NAME: Final = re.compile(r"[-+~]{0,2}[A-Za-z_][\w.-]*")


def _secret_option(name: str) -> bool:
    # `-p PASSWORD` is mysql's and psql's form; other one-letter options are too vague.
    # A bare `--key` or `KEY=` is a key; `--sort-key` is not.
    if name == "-p":
        return True
    bare = name.lstrip("-+~")
    return bare.lower() == "key" or is_secret_name(bare)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with secret values replaced by REDACTED.

    Covers `--token=abc`, `--password abc` (the next argument), `-p abc`, `API_KEY=abc`,
    Hydra's `db.password=abc`, credentials in URLs and secret shapes anywhere (a bare
    `ghp_...` argument, `--header=Authorization: Bearer ...`). A flag with a
    secret-looking name redacts the argument after it unless that one is an option
    itself: recording too little is the safe mistake.

    Example:
        >>> redact_argv(["train.py", "--token", "abc", "--lr=0.1", "DB_PASSWORD=x"])
        ['train.py', '--token', '[REDACTED]', '--lr=0.1', 'DB_PASSWORD=[REDACTED]']
    """
    clean: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next and not _OPTION.fullmatch(arg):
            clean.append(REDACTED)
            secret_next = False
            continue
        secret_next = False
        name, sep, _ = arg.partition("=")
        option = name.startswith("-")
        # Not `Authorization: Basic abc=`, nor a PEM block, whose words name secrets too.
        secret = _ARG_NAME.fullmatch(name) is not None and _secret_option(name)
        if sep and secret:
            clean.append(f"{name}={REDACTED}")
        elif option and not sep and secret:
            clean.append(arg)
            secret_next = True
        else:
            clean.append(redact_text(arg))
    return clean
