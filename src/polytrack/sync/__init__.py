"""Shipping a run's journal to a team server, exactly once.

- `engine`: `RunSync`, one run to one backend: the position kept, pending batches, retries;
  what `polytrack sync` runs;
- `worker`: `SyncWorker`, the thread a live run owns that drives the engine while it
  records, and hands what `finish()` could not send to the uploader;
- `uploader`: the home's one background uploader: the runs handed to it, its lock and
  its record (`polytrack sync --uploader`, `--status`, `--stop`);
- `backends/`: the `Backend` plug point and its implementations (MLflow, Polyaxon, another
  polytrack home, in memory), URI resolution, credentials and artifact stores.

This wing reads runs through `polytrack.store` and the base layer only: it knows nothing
of `Run`, of the readers in `polytrack.history` or of the command line. Importing this
package imports only this docstring: `init()` imports nothing of it without a backend, and
with one only `backends.target` (to check the URI) and `worker`; the worker's thread
imports the engine and the backend itself.
"""
