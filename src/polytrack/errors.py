"""Every exception polytrack raises on purpose.

```
PolytrackError                    base of everything below
├── InvalidInputError (ValueError) bad arguments to a log call or init(); names the field
│   └── InvalidMetricError (TypeError) a metric key or value that cannot be recorded
├── QueryError (ValueError)       a `where=` / `order_by=` expression that does not parse
├── RunNotFoundError (LookupError) no run matches an id, prefix or name
│   └── AmbiguousRunError         a prefix or name matches several runs
├── ArtifactNotFoundError (LookupError) the run has no artifact of that name
├── MediaNotFoundError (LookupError) the run has no media of that name, or not at that step
├── RunStateError                 an operation that the run's lifecycle forbids
├── StoreError (OSError)          the local store cannot be read or written
│   ├── CorruptRecordError        a journal frame failed its checksum
│   └── NotAStoreError            a reader's home holds another tool's files (mlruns, ...)
├── SpecError (ValueError)        a Polyaxonfile is invalid; names file, line and field path
│   ├── MissingParamsError        required inputs have no value: pass them with -P or params
│   ├── InvalidParamError         a param value cannot be converted to its input's type
│   └── DagCycleError             a DAG's dependencies form a cycle, named in `cycle`
├── UnsupportedMatrixError (ValueError) a matrix kind that needs a tuner, not an expansion
├── ReproduceError                a run cannot be reproduced as asked: says why, and what to do
├── ServerOnlyError (NotImplementedError) a Polyaxon call that needs Polyaxon's server
├── ImportSourceError             a history to import is unreadable or unsupported: names it
├── BackendError                  a tracking server or artifact store failed a request
│   ├── BackendUnavailableError   unreachable, timed out, 429 or 5xx: worth retrying later
│   ├── BackendRejectedError      a 4xx other than 401/403: this request will never succeed
│   ├── BackendAuthError          401/403: credentials missing, expired or not allowed
│   └── BackendConfigError (ValueError) a backend URI, config file or credential is unusable
└── LaunchError                   an operation cannot be compiled for or run on Kubernetes
    ├── KubeconfigError           no usable cluster: bad or missing kubeconfig, context, credential
    └── KubernetesError           the Kubernetes API refused a request, or could not be reached
        ├── KubernetesUnauthorizedError  401: the credentials were not accepted
        ├── KubernetesForbiddenError     403: may not do that verb on that resource there
        ├── KubernetesNotFoundError (LookupError) 404: no such object, or no such resource type
        ├── KubernetesConflictError      409: an object of that name exists already
        └── KubernetesUnavailableError   unreachable, timed out, or 429/5xx after retries
```

Tracking failures (`StoreError` on the write path) never reach the training loop:
the run warns once with `TrackingWarning` and keeps going.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRunError",
    "ArtifactNotFoundError",
    "BackendAuthError",
    "BackendConfigError",
    "BackendError",
    "BackendRejectedError",
    "BackendUnavailableError",
    "CorruptRecordError",
    "DagCycleError",
    "DamagedRecordsWarning",
    "ImportSourceError",
    "InvalidInputError",
    "InvalidMetricError",
    "InvalidParamError",
    "KubeconfigError",
    "KubernetesConflictError",
    "KubernetesError",
    "KubernetesForbiddenError",
    "KubernetesNotFoundError",
    "KubernetesUnauthorizedError",
    "KubernetesUnavailableError",
    "LaunchError",
    "MediaNotFoundError",
    "MissingParamsError",
    "NotAStoreError",
    "PolytrackError",
    "QueryError",
    "ReproduceError",
    "RunNotFoundError",
    "RunStateError",
    "ServerOnlyError",
    "SpecError",
    "StoreError",
    "TrackingWarning",
    "UnsupportedMatrixError",
]


class PolytrackError(Exception):
    """Base class of every error polytrack raises on purpose."""


class InvalidInputError(PolytrackError, ValueError):
    """An argument cannot be recorded; the message names the offending field."""


class InvalidMetricError(InvalidInputError, TypeError):
    """A metric key that is not a string, or a value that is not a real number."""


class QueryError(PolytrackError, ValueError):
    """A query expression is malformed; `position` points at the offending token."""

    def __init__(self, message: str, *, query: str, position: int, length: int = 1) -> None:
        self.reason = message
        self.query = query
        self.position = position
        self.length = max(1, length)
        caret = " " * position + "^" * self.length
        super().__init__(f"{message}\n  {query}\n  {caret}")


class RunNotFoundError(PolytrackError, LookupError):
    """No run matches the given id, id prefix or name."""


class AmbiguousRunError(RunNotFoundError):
    """A prefix or name matches more than one run."""


class ArtifactNotFoundError(PolytrackError, LookupError):
    """The run has no artifact of that name."""


class MediaNotFoundError(PolytrackError, LookupError):
    """The run has no media of that name, or none at the step asked for."""


class RunStateError(PolytrackError):
    """The run's lifecycle forbids this operation (for example resuming a live run)."""


class StoreError(PolytrackError, OSError):
    """The local store cannot be read or written."""


class CorruptRecordError(StoreError):
    """A journal frame failed its checksum; readers skip it."""


class NotAStoreError(StoreError):
    """The folder given as a home holds another tool's files (an MLflow `mlruns`, a
    TensorBoard logdir) and no run of polytrack's; readers refuse it and write nothing."""


class SpecError(PolytrackError, ValueError):
    """A Polyaxonfile is invalid: `file:line path: reason`, one problem per line.

    `file`, `line`, `path` and `reason` describe the first problem; `problems` holds every
    one found (the first included), so a caller can show them all or only the first.
    A problem that has no place in a file (a `-P` value) has `file` and `line` None.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: str = "",
        more: tuple[SpecError, ...] = (),
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.path = path
        self.problems: tuple[SpecError, ...] = (self, *more)
        super().__init__("\n".join(problem.where_and_why() for problem in self.problems))

    def where_and_why(self) -> str:
        """This one problem as `file:line path: reason`."""
        where = "" if self.file is None else self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.path:
            where = f"{where} {self.path}" if where else self.path
        return f"{where}: {self.reason}" if where else self.reason


class MissingParamsError(SpecError):
    """Required inputs have no value; `names` lists them in declaration order."""

    def __init__(
        self,
        reason: str,
        *,
        names: tuple[str, ...],
        file: str | None = None,
        line: int | None = None,
        path: str = "",
    ) -> None:
        self.names = names
        super().__init__(reason, file=file, line=line, path=path)


class InvalidParamError(SpecError):
    """A param value (from `-P` or `params:`) cannot be converted to its input's type."""

    def __init__(
        self,
        reason: str,
        *,
        name: str,
        file: str | None = None,
        line: int | None = None,
        path: str = "",
    ) -> None:
        self.name = name
        super().__init__(reason, file=file, line=line, path=path)


class DagCycleError(SpecError):
    """A DAG's dependencies form a cycle; `cycle` names it, first operation repeated last."""

    def __init__(
        self,
        reason: str,
        *,
        cycle: tuple[str, ...],
        file: str | None = None,
        line: int | None = None,
        path: str = "",
    ) -> None:
        self.cycle = cycle
        super().__init__(reason, file=file, line=line, path=path)


class UnsupportedMatrixError(PolytrackError, ValueError):
    """The matrix kind (hyperband, bayes, ...) picks runs from results: only a tuner runs it."""


class ReproduceError(PolytrackError):
    """The run cannot be reproduced as asked: no git state to check out, a commit that
    cannot be reached, a diff that does not apply, a command that cannot be replayed.
    The message says which, and what to do."""


class ImportSourceError(PolytrackError):
    """A source to import (an MLflow store, an event file, an offline run) cannot be read
    or is not supported; the message names the file or URI. `polytrack.importers` goes on
    with the rest of the source and reports each in its summary."""


class ServerOnlyError(PolytrackError, NotImplementedError):
    """A Polyaxon client call that only Polyaxon's server can answer (its REST clients,
    agents, model registry); the message says what polytrack offers instead."""


class BackendError(PolytrackError):
    """A tracking server or artifact store failed a request; the message names the request.

    `status` is the HTTP status where one came back (None for connection failures).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackendUnavailableError(BackendError):
    """Unreachable, timed out, or answered 429/5xx: the same request may succeed later.

    `retry_after` is the server's `Retry-After`, in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class BackendRejectedError(BackendError):
    """The server refused the request itself (a 4xx): sending it again cannot help."""


class BackendAuthError(BackendError):
    """401/403: the credentials are missing, expired, or may not do this."""


class BackendConfigError(BackendError, ValueError):
    """A backend URI, config file or credential cannot be used; the message says which."""


class LaunchError(PolytrackError):
    """An operation cannot be compiled into Kubernetes objects, or run: the message says why."""


class KubeconfigError(LaunchError):
    """No usable cluster: the kubeconfig, its context or a credential is missing or invalid."""


class KubernetesError(LaunchError):
    """The Kubernetes API answered a request with an error, or could not be reached.

    The message names the request (`create jobs.batch "train-x" in namespace "ml"`) and
    what the server said (its `Status` message). `status` is the HTTP status (None when
    no answer came), `reason` the Status reason (`AlreadyExists`, `Forbidden`, ...).
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubernetesUnauthorizedError(KubernetesError):
    """401: the server did not accept the credentials (expired token, wrong certificate)."""


class KubernetesForbiddenError(KubernetesError):
    """403: the credentials are valid but may not do this verb on this resource there."""


class KubernetesNotFoundError(KubernetesError, LookupError):
    """404: the object does not exist, or the cluster lacks the resource type (a CRD)."""


class KubernetesConflictError(KubernetesError):
    """409: an object of that name exists already (or was changed meanwhile)."""


class KubernetesUnavailableError(KubernetesError):
    """The API could not be reached, timed out, or kept answering 429/5xx through retries."""


class TrackingWarning(UserWarning):
    """Tracking failed or degraded; training goes on. Issued once per failure kind."""


class DamagedRecordsWarning(TrackingWarning):
    """A run's files hold damaged records, which readers skipped: said once per run and
    process (`run_id`, and `messages`, each naming a file and byte range)."""

    def __init__(self, run_id: str, messages: tuple[str, ...]) -> None:
        self.run_id = run_id
        self.messages = messages
        lines = [f"\n  {message}" for message in messages[:5]]
        if len(messages) > 5:
            lines.append(f"\n  and {len(messages) - 5} more")
        super().__init__(
            f"run {run_id}: damaged records were skipped (`polytrack runs show {run_id}` "
            f"lists them):{''.join(lines)}"
        )
