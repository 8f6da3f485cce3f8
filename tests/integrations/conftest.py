"""Fixtures and warning filters shared by the integration tests (real frameworks, CPU)."""

from __future__ import annotations

import os

# Keras 3 picks its backend when first imported: torch, the only one installed here.
os.environ.setdefault("KERAS_BACKEND", "torch")
# Transformers builds its tiny models locally: never reach for the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
