"""Collectors of the reproducibility snapshot and of what a run does in the background.

One subject per module: `git`, `code`, `environment`, `hardware`, `seeds`, `data`,
`system` (the resource sampler) and `logs` (stdout/stderr capture). `snapshot` runs the
captures at `init()` within a time budget. Nothing here is imported by `import polytrack`.
"""
