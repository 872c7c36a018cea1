"""The AML workspaces and runs that the ARM and AML stand-ins serve, loaded from
fixture JSON (default: fixtures/runs.json).

Fixture format:

    {"workspaces": [{
        "subscriptionId": "...", "resourceGroup": "ml-rg", "name": "ml-ws",
        "location": "eastus", "workspaceId": "<guid>",
        "computes": [{<ComputeResource: name, location, properties>}],
        "runs": [{<Run fields, camelCase, as the run history API names them>,
                  "logFiles": {...},                      (RunDetails only)
                  "metrics": {"accuracy": [{"step": 0, "value": 0.93,
                                            "createdUtc": "..."}]}}]}]}

A run is written once, in the Run model's shape; aml.py projects it onto the
Run and RunDetails answers. Names of subscriptions, resource groups and
workspaces compare case-insensitively, as ARM compares them. Thread-safe:
tests may add runs while the stand-ins serve.
"""

import copy
import dataclasses
import json
import pathlib
import threading
from typing import Any

DEFAULT_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "runs.json"


@dataclasses.dataclass
class Workspace:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    workspace_id: str
    runs: dict[str, dict[str, Any]]
    computes: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}")


class Catalog:
    def __init__(self, workspaces: list[Workspace]) -> None:
        self._workspaces = workspaces
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: pathlib.Path = DEFAULT_FIXTURES) -> "Catalog":
        document = json.loads(pathlib.Path(path).read_text())
        return cls([Workspace(subscription_id=w["subscriptionId"],
                              resource_group=w["resourceGroup"], name=w["name"],
                              location=w["location"], workspace_id=w["workspaceId"],
                              runs={r["runId"]: r for r in w.get("runs", [])},
                              computes=w.get("computes", []))
                    for w in document["workspaces"]])

    @property
    def workspaces(self) -> list[Workspace]:
        return list(self._workspaces)

    def has_subscription(self, subscription_id: str) -> bool:
        return any(w.subscription_id.lower() == subscription_id.lower()
                   for w in self._workspaces)

    def has_resource_group(self, subscription_id: str, resource_group: str) -> bool:
        return any(w.subscription_id.lower() == subscription_id.lower()
                   and w.resource_group.lower() == resource_group.lower()
                   for w in self._workspaces)

    def find(self, subscription_id: str, resource_group: str, name: str) -> Workspace | None:
        key = (subscription_id.lower(), resource_group.lower(), name.lower())
        return next((w for w in self._workspaces
                     if (w.subscription_id.lower(), w.resource_group.lower(),
                         w.name.lower()) == key), None)

    def run(self, workspace: Workspace, run_id: str) -> dict[str, Any] | None:
        """A copy of the run, or None."""
        with self._lock:
            run = workspace.runs.get(run_id)
            return copy.deepcopy(run) if run is not None else None

    def children(self, workspace: Workspace, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in workspace.runs.values()
                    if r.get("parentRunId") == run_id]

    def put_run(self, workspace: Workspace, run: dict[str, Any]) -> None:
        """Adds or replaces a run (e.g. to move it to a terminal status)."""
        with self._lock:
            workspace.runs[run["runId"]] = copy.deepcopy(run)
