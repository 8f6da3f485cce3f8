"""Reading recorded runs: what `polytrack.runs()`, `compare()` and `lineage()` answer.

- `runs`: `runs()`, `get_run()` and `RunView`, a recorded run with its history, snapshot,
  logs and artifacts;
- `compare`: runs side by side, their differences, and bit-for-bit metric checks;
- `lineage`: which runs consumed and produced which data, artifacts and models;
- `reproduce`: a recorded run checked out, checked against what is here, and run again;
- `reproduce_spec`: a Polyaxonfile that runs a recorded run again on Kubernetes.

Everything here reads through `polytrack.store`; nothing below it (`store`, `sync`,
`capture`, `spec`, `launch`) imports this wing. Importing this package imports only this
docstring.
"""
