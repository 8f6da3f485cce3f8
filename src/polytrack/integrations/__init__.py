"""Framework integrations: one small module per framework (`polytrack.integrations.keras`,
`.lightning`, `.transformers`, ...), each imported only when used and installed with its
extra (`pip install polytrack[lightning]`).

Each attaches to the current run, or starts one with `polytrack.init()` when none is
current, and records what that framework's users expect to see. They use polytrack's
public API as a user would; `polytrack.tracking.contrib` gives them Polyaxon's names.
"""
