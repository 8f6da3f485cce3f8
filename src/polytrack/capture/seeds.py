"""Seeding every random generator a training script is likely to use, and saying which."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import MutableMapping

from polytrack.errors import InvalidInputError
from polytrack.models import SeedState

__all__ = ["seed_everything"]

# torch refuses deterministic cuBLAS calls without it (CUDA >= 10.2); see
# https://docs.nvidia.com/cuda/cublas/index.html#results-reproducibility
_CUBLAS_WORKSPACE: str = ":4096:8"


def seed_everything(
    seed: int, *, deterministic: bool = False, environ: MutableMapping[str, str] | None = None
) -> SeedState:
    """Seed `random`, numpy, and torch and TensorFlow where the process imported them.

    Args:
        seed: 0 <= seed < 2**32 (numpy's limit).
        deterministic: also make torch pick deterministic algorithms (cuDNN included);
            sets `CUBLAS_WORKSPACE_CONFIG` when unset, which CUDA needs for that.
        environ: where that variable is set (default `os.environ`).

    Returns:
        What was seeded, as recorded with the run.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InvalidInputError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    environ = os.environ if environ is None else environ
    libraries = ["random"]
    details: dict[str, str] = {}
    random.seed(seed)
    import numpy as np  # a dependency; every seeded script has numpy in use

    np.random.seed(seed)
    libraries.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)  # seeds every CUDA device too
        libraries.append("torch")
        if deterministic:
            if "CUBLAS_WORKSPACE_CONFIG" not in environ:
                environ["CUBLAS_WORKSPACE_CONFIG"] = _CUBLAS_WORKSPACE
            details["CUBLAS_WORKSPACE_CONFIG"] = environ["CUBLAS_WORKSPACE_CONFIG"]
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            details["torch.use_deterministic_algorithms"] = "True"
            details["torch.backends.cudnn.benchmark"] = "False"
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        tensorflow.random.set_seed(seed)
        libraries.append("tensorflow")
        if deterministic:
            tensorflow.config.experimental.enable_op_determinism()
            details["tensorflow.op_determinism"] = "True"
    # Hash randomisation is fixed at interpreter start: record it, it cannot be set now.
    details["PYTHONHASHSEED"] = environ.get("PYTHONHASHSEED", "random")
    return SeedState(
        seed=seed, libraries=tuple(libraries), deterministic=deterministic, details=details
    )
