"""The chart's bridge Deployment (`bridge.enabled`): off by default, and when on, a pod that
`executor bridge` accepts the environment of."""

from __future__ import annotations

import os
from typing import Any

import helm_python
import pytest

from remote_executor.bridge.settings import BridgeSettings
from tests.deploy.test_helm import chart, ci_values, is_bridge, manifests  # noqa: F401

TOKEN = "token-from-the-secret"


def bridge_deployment(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    deployments = [d for d in found if d["kind"] == "Deployment" and is_bridge(d)]
    assert len(deployments) <= 1
    return deployments[0] if deployments else None


def test_no_bridge_unless_enabled(chart: helm_python.Chart) -> None:  # noqa: F811
    values = chart.merge_values(ci_values("minimal-values.yaml"))
    assert bridge_deployment(manifests(chart, values)) is None


def test_the_bridge_accepts_its_rendered_environment(
    chart: helm_python.Chart,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = chart.merge_values(ci_values("bridge-values.yaml"))
    deployment = bridge_deployment(manifests(chart, values))
    assert deployment is not None
    spec = deployment["spec"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate")
    [container] = spec["template"]["spec"]["containers"]
    assert container["args"] == ["bridge"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {
        v["name"]: v.get("value", TOKEN if "secretKeyRef" in v.get("valueFrom", {}) else None)
        for v in container["env"]
    }
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))

    settings = BridgeSettings()

    assert settings.queues == values["bridge"]["queues"]
    assert settings.token == TOKEN
    assert settings.gms_url == values["global"]["datahub"]["gms"]["url"]
    assert settings.consumer_id == "remote-executor-bridge"
    assert settings.stale_running_seconds == 1800
    assert settings.health_port == container["ports"][0]["containerPort"]
    probes = {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    assert probes == {"/healthz", "/readyz"}


def test_without_queues_the_bridge_serves_the_workers_executor_id(
    chart: helm_python.Chart,  # noqa: F811
) -> None:
    values = chart.merge_values(ci_values("minimal-values.yaml"))
    values["bridge"]["enabled"] = True
    deployment = bridge_deployment(manifests(chart, values))
    assert deployment is not None
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [queues] = [v["value"] for v in container["env"] if v["name"] == "EXECUTOR_BRIDGE_QUEUES"]
    assert queues == f"remote={values['queue']['url']}"
