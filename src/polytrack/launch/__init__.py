"""Launching Polyaxonfile operations on Kubernetes, as `polytrack run` does.

One module per job, lowest first:

- `names`: DNS-1123 names and label values made from run names;
- `resources`: the resource types polytrack creates or reads, and their REST paths;
- `manifests`: `compile_operation`, an operation and a `Target` (its run) to manifests;
  pure;
- `kubeconfig`: kubeconfig files and the in-cluster service account to a `ClusterAuth`;
  exec credential plugins;
- `client`: `KubeClient`, the REST client on a `requests.Session`, the one place HTTP
  errors become `KubernetesError`s;
- `watch`: `WorkloadWatch` (a workload's state as a run status) and `PodLogs` (its pods'
  logs), each on threads it owns;
- `submit`: `create_workload`, `cancel`, and the `Scheduler` of a matrix's or DAG's
  workloads;
- `plan`: a Polyaxonfile to the units one `polytrack run` submits;
- `ops`: the registry of submitted workloads under `<home>/ops/`.

Nothing here makes or finishes runs: the command line (`polytrack.cli.run`, `.ops`) does,
through the public API, and passes run ids down. Importing `polytrack` imports none of
this; importing this package imports only this docstring.
"""
