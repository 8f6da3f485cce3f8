"""Planted secrets and ordinary values for the redaction tests: realistic shapes, each
with a random core (the part that must appear in no byte of the store)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid

import attrs

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


@attrs.frozen
class Secret:
    """A planted secret: its text, the random parts that must never be stored, its kind."""

    kind: str
    text: str
    cores: tuple[str, ...]

    @property
    def one_line(self) -> bool:
        return "\n" not in self.text and len(self.text) <= 200


class _Maker:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def rnd(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self._random.choice(alphabet) for _ in range(n))

    def digits(self, n: int) -> str:
        return str(self._random.randint(1, 9)) + self.rnd(n - 1, string.digits)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def shaped_secrets(seed: int = 12) -> list[Secret]:
    """Secrets recognisable by their shape alone, whatever they are called."""
    m = _Maker(seed)
    out: list[Secret] = []

    def add(kind: str, text: str, *cores: str) -> None:
        out.append(Secret(kind, text, cores or (text,)))

    for prefix in ("ghp", "gho", "ghu", "ghs", "ghr"):
        body = m.rnd(36)
        add(f"github-{prefix}", f"{prefix}_{body}", body)
    first, second = m.rnd(22), m.rnd(59)
    add("github-fine-grained", f"github_pat_{first}_{second}", first, second)
    body = m.rnd(20, URLSAFE)
    add("gitlab-pat", f"glpat-{body}", body)
    body = m.rnd(48, URLSAFE)
    add("openai-project", f"sk-proj-{body}", body)
    a, b = m.rnd(20), m.rnd(20)
    add("openai-legacy", f"sk-{a}T3BlbkFJ{b}", a, b)
    body = m.rnd(93, URLSAFE)
    add("anthropic", f"sk-ant-api03-{body}AA", body)
    for prefix in ("AKIA", "ASIA"):
        body = m.rnd(16, UPPER_DIGITS)
        add(f"aws-{prefix}", f"{prefix}{body}", body)
    body = m.rnd(24)
    add("slack-bot", f"xoxb-{m.digits(12)}-{m.digits(13)}-{body}", body)
    body = m.rnd(32, HEX)
    add("slack-user", f"xoxp-{m.digits(12)}-{m.digits(12)}-{m.digits(13)}-{body}", body)
    team, bot, body = m.rnd(8, UPPER_DIGITS), m.rnd(10, UPPER_DIGITS), m.rnd(24)
    add("slack-webhook", f"https://hooks.slack.com/services/T{team}/B{bot}/{body}", body)
    for prefix in ("sk_live", "rk_live"):
        body = m.rnd(24)
        add(f"stripe-{prefix}", f"{prefix}_{body}", body)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": m.rnd(12), "iat": 1718000000}).encode())
    signature = m.rnd(43, URLSAFE)
    add("jwt", f"{header}.{payload}.{signature}", payload, signature)
    for label in ("RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY"):
        lines = [m.rnd(64, B64) for _ in range(5)] + [m.rnd(20, B64) + "=="]
        pem = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
        add(f"pem-{label.split()[0].lower()}", pem, *lines)
    key = m.rnd(86, B64) + "=="
    add(
        "azure-connection-string",
        "DefaultEndpointsProtocol=https;AccountName=exps;"
        f"AccountKey={key};EndpointSuffix=core.windows.net",
        key,
    )
    body = m.rnd(34, string.ascii_letters)
    add("huggingface", f"hf_{body}", body)
    for prefix in ("SK", "AC"):
        body = m.rnd(32, HEX)
        add(f"twilio-{prefix}", f"{prefix}{body}", body)
    a, b = m.rnd(22, URLSAFE), m.rnd(43, URLSAFE)
    add("sendgrid", f"SG.{a}.{b}", a, b)
    body = m.rnd(36)
    add("npm", f"npm_{body}", body)
    body = m.rnd(35, URLSAFE)
    add("google-api", f"AIza{body}", body)
    body = m.rnd(32, HEX)
    add("databricks", f"dapi{body}", body)
    body = m.rnd(33, URLSAFE)
    add("telegram", f"{m.digits(9)}:AA{body}", body)
    a, b, c = m.rnd(23), m.rnd(6), m.rnd(27, URLSAFE)
    add("discord", f"M{a}.{b}.{c}", a, c)
    body = m.rnd(32, HEX)
    add("mailchimp", f"{body}-us6", body)
    body = m.rnd(43, URLSAFE)
    add("square", f"sq0csp-{body}", body)
    body = m.rnd(80, URLSAFE)
    add("pypi", f"pypi-AgEIcHlwaS5vcmc{body}", body)
    for scheme, user in (
        ("postgresql", "trainer"),
        ("mongodb+srv", "etl"),
        ("redis", ""),
        ("amqp", "worker"),
        ("https", "deploy"),
    ):
        password = m.rnd(14)
        add(f"url-{scheme}", f"{scheme}://{user}:{password}@db.internal:5432/exp", password)
    token = m.rnd(36)
    add("url-token-user", f"https://ghp_{token}@github.com/org/repo.git", token)
    pem_lines = [m.rnd(64, B64) for _ in range(3)]
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(pem_lines) + "\n-----END PRIVATE KEY-----\n"
    key_id = m.rnd(40, HEX)
    account = json.dumps(
        {
            "type": "service_account",
            "project_id": "exp-project",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": "trainer@exp-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
        }
    )
    add("gcp-service-account", account, key_id, *pem_lines)
    token = m.rnd(40)
    add("bearer-header", f"Authorization: Bearer {token}", token)
    credentials = base64.b64encode(f"admin:{m.rnd(16)}".encode()).decode()
    add("basic-header", f"Authorization: Basic {credentials}", credentials)
    return out


def named_secrets(seed: int = 34) -> list[Secret]:
    """Passwords with no shape of their own: found by the name they are given under."""
    m = _Maker(seed)
    passwords = [f"pw-{m.rnd(16)}" for _ in range(40)]
    return [Secret("password", text, (text,)) for text in passwords]


def short_remote_token(seed: int = 56) -> str:
    """A token too short to look like one: only its place, a git remote's user, tells."""
    return _Maker(seed).rnd(8)


def ordinary_values() -> dict[str, object]:
    """Params that are no secrets and must be recorded as they are."""
    digest = hashlib.sha256(b"train.csv").hexdigest()
    return {
        "lr": 0.001,
        "lr_text": "3e-4",
        "batch_size": 64,
        "betas": "0.9,0.999",
        "optimizer": "adamw",
        "scheduler": "cosine",
        "model": "bert-base-uncased",
        "model_large": "roberta-large",
        "encoder": "sentence-transformers/all-MiniLM-L6-v2",
        "llm": "meta-llama/Llama-2-7b-chat-hf",
        "classifier": "distilbert-base-uncased-finetuned-sst-2-english",
        "vision": "ViT-B/16",
        "arch": "resnet50",
        "dataset": "wikitext-103-raw-v1",
        "split": "train[:90%]",
        "data_dir": "/data/imagenet/train",
        "checkpoint": "./checkpoints/run-0001/model.pt",
        "cache": "/home/user/.cache/huggingface/hub/models--bert-base-uncased/snapshots/"
        "86b5e0934494bd15c9632b12f734a8a67f723594/config.json",
        "tokenizer": "/data/tokenizers/bert-base-uncased/vocab.txt",
        "bucket": "s3://my-bucket/datasets/train.parquet",
        "gcs": "gs://my-bucket/checkpoints/run_0001",
        "hub": "https://huggingface.co/bert-base-uncased",
        "tracking": "http://localhost:5000",
        "repo": "https://github.com/org/repo.git",
        "ssh_repo": "git@github.com:org/repo.git",
        "ssh_url": "ssh://git@host.example/org/repo",
        "data_sha256": digest,
        "data_digest": f"sha256:{digest}",
        "md5": hashlib.md5(b"x").hexdigest(),
        "upper_hex": hashlib.sha1(b"y").hexdigest().upper(),
        "commit": hashlib.sha1(b"commit").hexdigest(),
        "short_commit": hashlib.sha1(b"commit").hexdigest()[:7],
        "run_uuid": str(uuid.UUID(int=0x1234567890ABCDEF1234567890ABCDEF)),
        "uuid_hex": uuid.UUID(int=0xFEDCBA0987654321FEDCBA0987654321).hex,
        "small_b64": base64.b64encode(b"hello world").decode(),
        "b64_data": base64.b64encode(b"base64 of small data").decode(),
        "date": "2024-06-12T10:00:00Z",
        "device": "cuda:0",
        "precision": "bf16",
        "locale": "en_US.UTF-8",
        "email": "alice@example.com",
        "sort_key": "created_at",
        "max_tokens": 512,
        "key_dim": 64,
        "num_keys": 8,
        "passes": 3,
        "patience": 5,
        "path": "/tmp/out",
        "author": "alice",
        "layers": [64, 128, "relu"],
    }
