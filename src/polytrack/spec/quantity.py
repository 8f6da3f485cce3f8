"""Kubernetes resource quantities (`500m`, `1.5`, `2Gi`, `1e3`), checked against the API grammar.

The grammar is Kubernetes' own (k8s.io/apimachinery `resource.Quantity`):

```
quantity      ::= signedNumber suffix
suffix        ::= binarySI | decimalExponent | decimalSI
binarySI      ::= Ki | Mi | Gi | Ti | Pi | Ei
decimalSI     ::= n | u | m | "" | k | M | G | T | P | E
decimalExponent ::= "e" signedNumber | "E" signedNumber     (an integer exponent)
signedNumber  ::= sign number;  number ::= digits | digits.digits | digits. | .digits
```

Resource requests and limits must not be negative, which the API also enforces.
"""

from __future__ import annotations

import math
import re
from typing import Any

from polytrack._convert import FieldError, Rendered, got

__all__ = ["is_quantity", "parse_quantity"]

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?"
)


def is_quantity(text: str) -> bool:
    """Whether `text` is a quantity in Kubernetes' grammar, sign included.

    Example:
        >>> [is_quantity(text) for text in ("500m", "1.5", "2Gi", "1e3", "lots", "1 Gi")]
        [True, True, True, True, False, False]
    """
    return _QUANTITY.fullmatch(text) is not None


def parse_quantity(value: Any) -> str:
    """A resource quantity as the text the API takes: `1` -> "1", "2Gi" stays "2Gi".

    YAML numbers are quantities too (`cpu: 1`, `memory: 1024`).

    Raises:
        FieldError: not a quantity, or a negative one.
    """
    native = value.native if isinstance(value, Rendered) else value
    if isinstance(native, int | float) and not isinstance(native, bool):
        if not math.isfinite(native):
            raise FieldError(f"expected a quantity, got {got(value)}")
        if native < 0:
            raise FieldError(f"expected a non-negative quantity, got {got(value)}")
        return str(native) if isinstance(native, int) else repr(native)
    if isinstance(value, str):
        match = _QUANTITY.fullmatch(value)
        if match is None:
            raise FieldError(f"expected a quantity, got {got(value)}")
        if match["sign"] == "-" and float(match["number"]) != 0:
            raise FieldError(f"expected a non-negative quantity, got {got(value)}")
        return str(value)
    raise FieldError(f"expected a quantity, got {got(value)}")
