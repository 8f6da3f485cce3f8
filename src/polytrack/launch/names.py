"""Kubernetes names and label values made from run names, which may hold anything.

Object names here are DNS-1123 labels that also start with a letter (so DNS-1035 labels
too): at most 63 characters of `a-z`, `0-9` and `-`, starting with a letter and ending
alphanumeric. That one rule fits every kind polytrack creates: a Service name must be a
DNS-1035 label, a Job's name becomes a label value, and the pods and services of Kubeflow
jobs append `-<replica type>-<index>` to the name, so workloads keep their names to
`MAX_WORKLOAD` characters.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_WORKLOAD",
    "dns_label",
    "is_dns_label",
    "is_label_value",
    "label_value",
    "workload_name",
]

# A Kubeflow job named N gets pods and services named `N-evaluator-12`: 63 - 13.
MAX_WORKLOAD: Final = 50
_LABEL: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_VALUE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NOT_NAME: Final = re.compile(r"[^a-z0-9]+")
_NOT_VALUE: Final = re.compile(r"[^A-Za-z0-9_.-]+")


def is_dns_label(name: str, *, max_length: int = 63) -> bool:
    """Whether `name` is a DNS-1123 label that starts with a letter, within `max_length`."""
    return len(name) <= max_length and _LABEL.fullmatch(name) is not None


def dns_label(text: str, *, max_length: int = 63, fallback: str = "run") -> str:
    """`text` made into a DNS label: lower case, other characters as `-`, cut to fit.

    Example:
        >>> dns_label("ResNet_50 (lr=0.1)")
        'resnet-50-lr-0-1'
        >>> dns_label("42")
        'r-42'
    """
    name = _NOT_NAME.sub("-", text.lower()).strip("-")
    if not name:
        name = fallback
    if not name[0].isalpha():
        name = f"r-{name}"
    return name[:max_length].rstrip("-")


def workload_name(base: str, suffix: str = "", *, max_length: int = MAX_WORKLOAD) -> str:
    """The name of a workload: `base` as a DNS label, then `-suffix`, the base cut so that
    the suffix (a run id, a matrix index) always survives.

    Example:
        >>> workload_name("train", "a1b2c3d4")
        'train-a1b2c3d4'
    """
    cleaned = _NOT_NAME.sub("-", suffix.lower()).strip("-")
    tail = f"-{cleaned}" if cleaned else ""
    return dns_label(base, max_length=max_length - len(tail)) + tail


def is_label_value(value: str) -> bool:
    """Whether `value` is a valid label value (at most 63 characters)."""
    return len(value) <= 63 and _VALUE.fullmatch(value) is not None


def label_value(text: str) -> str:
    """`text` made into a label value: other characters as `-`, cut to 63, trimmed.

    Example:
        >>> label_value("team/vision@acme")
        'team-vision-acme'
    """
    value = _NOT_VALUE.sub("-", text)[:63]
    return value.strip("-_.")
