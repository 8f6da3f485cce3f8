"""Where synced runs go: the `Backend` plug point (`base`) and its implementations.

- `base`: the `Backend` protocol, `Batch`, `Artifact` and the repeats a backend must
  make harmless;
- `registry`: a backend URI to an instance, built-in schemes and the `polytrack.backends`
  entry-point group;
- `config`: backend URIs and credentials from arguments, environment and the config file;
- `target`: which backend a run syncs to, resolved at `init()` without importing it;
- `memory`, `mlflow`, `polyaxon` (with `polyaxon_events`), `home` (another polytrack
  home): the backends; `http`: what the HTTP ones share;
- `artifact_store`: artifacts into an fsspec URL (S3 and others) instead of a server.

Importing this package imports only this docstring: a backend's HTTP client loads when
that backend is built.
"""
