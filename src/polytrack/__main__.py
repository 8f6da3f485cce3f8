"""`python -m polytrack`: the same as the `polytrack` console script."""

from polytrack.cli import entrypoint

entrypoint()
