"""The embedded store: a run's files on disk and the index over a home's runs.

One module per subject, lowest first:

- `journal`: the on-disk format of one run (segments of metric records, the framed events
  log, checksums) and the files that hold it;
- `writer`: `JournalWriter`, the log call's hot path and the thread that fsyncs behind it;
- `reader`: a run directory read back (events, points as numpy arrays, summaries);
- `tail`: a journal read onward from a `Position`, in repeatable slices, for the sync
  engine;
- `blobs`: the content-addressed blob store of a home (the files of artifacts and models);
- `changes`: the changes log of a run (renamed, tagged, noted, trashed after the fact);
- `liveness`: whether a run's owning process is still alive;
- `query`: the `where=` / `order_by=` language, compiled to the index's SQL;
- `index`: the SQLite index, a cache of the run directories;
- `local`: `LocalStore`, a home's run directories together with their index.

This wing knows no network and no `Run`: it imports only the base layer (`errors`,
`models`, `settings`, `_convert`, `redact`, `_speedups`). Importing this package imports
only this docstring, so `init()` pays for the modules it uses and no more.
"""
