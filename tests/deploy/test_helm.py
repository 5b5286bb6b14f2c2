"""The Helm chart, rendered by Helm's own Go engine (helm-python-sdk; no helm binary).

For the default values and every `ci/*-values.yaml`: `helm lint --strict` finds nothing,
every manifest validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict), checkov fails no check, and the worker's own `load_settings` accepts the rendered
environment. Bad values are refused with a message naming the value.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from remote_executor.health import HealthServer, Metrics
from remote_executor.queue.sqs import region_from_url
from tests.deploy.conftest import REPO, checkov, worker_settings

CHART = REPO / "deploy" / "helm" / "remote-executor"
CI_FILES = sorted(CHART.glob("ci/*-values.yaml"))
RELEASE = "remote-executor"
NAMESPACE = "datahub"
# A year-old release and the newest kubernetes-validate bundles: the chart uses only GA
# APIs (apps/v1, policy/v1, autoscaling/v2, networking.k8s.io/v1) present in both.
KUBERNETES_VERSIONS = ("1.33", "1.37")
TOKEN = "test-token-value"

# KEDA's CRDs are not in the Kubernetes schemas. These are the parts of the ScaledObject
# and TriggerAuthentication openAPIV3Schema (KEDA v2.20, config/crd/bases) that the chart
# uses, with additionalProperties closed so a misspelt field fails here too.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "authenticationRef": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                            },
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
TRIGGER_AUTHENTICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "podIdentity": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["provider"],
                    "properties": {
                        "provider": {"enum": ["azure-workload", "gcp", "aws", "aws-eks", "none"]},
                        "identityOwner": {"enum": ["keda", "workload"]},
                        "roleArn": {"type": "string"},
                    },
                    # "Mutually exclusive with roleArn" (the CRD's description).
                    "not": {"required": ["identityOwner", "roleArn"]},
                }
            },
        },
    },
}
CRD_SCHEMAS = {
    "ScaledObject": SCALED_OBJECT_SCHEMA,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION_SCHEMA,
}
# The metadata the aws-sqs-queue scaler reads (KEDA v2.20, pkg/scalers/aws_sqs_queue_scaler.go).
SQS_SCALER_KEYS = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "scaleOnInFlight",
    "scaleOnDelayed",
    "identityOwner",
}


def ci_values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "ci" / name).read_text())
    return loaded


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it, maps merged key by key (as Helm does)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, str]:
    """Template path (without the chart name) -> rendered text, blank ones left out."""
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return {
        path.removeprefix(f"{RELEASE}/"): text for path, text in rendered.items() if text.strip()
    }


def manifests(chart: helm_python.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path, text in render(chart, values).items():
        if path.endswith(".yaml"):
            found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


def one(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one manifest of kind; for Deployment, the workers' (the bridge's has its own tests,
    in test_helm_bridge.py)."""
    matches = [doc for doc in found if doc["kind"] == kind and not is_bridge(doc)]
    assert len(matches) == 1, f"{len(matches)} {kind} rendered"
    return matches[0]


def is_bridge(doc: dict[str, Any]) -> bool:
    labels = doc.get("metadata", {}).get("labels") or {}
    return bool(labels.get("app.kubernetes.io/component") == "bridge")


def container(found: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(found, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["executor"]
    worker: dict[str, Any] = containers[0]
    return worker


def test_app_version_is_the_package_version() -> None:
    package = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    chart_yaml = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert package is not None
    assert chart_yaml["apiVersion"] == "v2"
    assert chart_yaml["appVersion"] == package.group(1)


@pytest.mark.parametrize(
    "values_file", [None, *CI_FILES], ids=lambda p: p.name if p else "defaults"
)
def test_lint_finds_nothing(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None

    report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE)

    # Severity 1 is INFO ("icon is recommended"); 2 is a warning, 3 an error.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report
    assert report["errors"] == []


@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(chart: helm_python.Chart, values_file: Path) -> None:
    found = manifests(chart, ci_values(values_file.name))

    assert {"Deployment", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"} <= {
        doc["kind"] for doc in found
    }
    for doc in found:
        assert doc["metadata"]["namespace"] == NAMESPACE
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_misspelt_field_fails_validation(chart: helm_python.Chart) -> None:
    found = manifests(chart, ci_values("keda-values.yaml"))
    deployment, scaled = one(found, "Deployment"), one(found, "ScaledObject")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    scaled["spec"]["maxReplicas"] = 3  # the HPA's name, not KEDA's

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)


def test_keda_scales_the_deployment_on_the_queue(chart: helm_python.Chart) -> None:
    values = ci_values("keda-values.yaml")
    found = manifests(chart, values)
    scaled, auth = one(found, "ScaledObject"), one(found, "TriggerAuthentication")
    deployment = one(found, "Deployment")
    (trigger,) = scaled["spec"]["triggers"]
    metadata = trigger["metadata"]

    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 8)
    assert trigger["type"] == "aws-sqs-queue"
    assert set(metadata) <= SQS_SCALER_KEYS
    assert metadata["queueURL"] == values["queue"]["url"]
    # KEDA takes the queue name from a /<account>/<name> path, and the region from here.
    assert urlparse(metadata["queueURL"]).path.split("/")[1:] == [
        "123456789012",
        "datahub-executor",
    ]
    assert metadata["awsRegion"] == region_from_url(values["queue"]["url"]) == "eu-west-1"
    # One pod's share of the queue is what it runs at once.
    assert metadata["queueLength"] == str(values["worker"]["maxConcurrentTasks"])
    assert int(metadata["activationQueueLength"]) == 1
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "workload"}


def test_keda_can_assume_a_role_of_its_own(chart: helm_python.Chart) -> None:
    role = "arn:aws:iam::123456789012:role/keda-sqs-reader"
    values = merged(ci_values("keda-values.yaml"), {"autoscaling": {"keda": {"roleArn": role}}})

    auth = one(manifests(chart, values), "TriggerAuthentication")

    jsonschema.validate(auth, TRIGGER_AUTHENTICATION_SCHEMA)
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "roleArn": role}


def test_hpa_scales_the_deployment_on_cpu_and_memory(chart: helm_python.Chart) -> None:
    found = manifests(chart, ci_values("hpa-values.yaml"))
    hpa, deployment = one(found, "HorizontalPodAutoscaler"), one(found, "Deployment")

    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900


def test_checkov_fails_no_check(chart: helm_python.Chart, tmp_path: Path) -> None:
    annotated_skips = 0
    for values_file in CI_FILES:
        folder = tmp_path / values_file.stem
        folder.mkdir()
        for path, text in render(chart, ci_values(values_file.name)).items():
            if path.endswith(".yaml"):
                (folder / Path(path).name).write_text(text)
                annotated_skips += text.count("checkov.io/skip")

    summary = checkov("kubernetes", "--directory", str(tmp_path))["summary"]

    assert summary["resource_count"] >= 5 * len(CI_FILES)
    # Every skip is one of the chart's justified annotations, each honoured once.
    assert summary["skipped"] == annotated_skips
    assert summary["passed"] > 80 * len(CI_FILES)


def test_skips_only_what_the_worker_cannot_do(chart: helm_python.Chart) -> None:
    def skips(values: dict[str, Any]) -> set[str]:
        annotations = one(manifests(chart, values), "Deployment")["metadata"]["annotations"]
        return {v.split("=")[0] for k, v in annotations.items() if k.startswith("checkov.io/")}

    by_tag = ci_values("minimal-values.yaml")
    by_digest = ci_values("replicas-values.yaml")

    # The token: the worker reads DATAHUB_GMS_TOKEN only from its environment.
    # The digest: only while the image is pinned by tag.
    assert skips(by_tag) == {"CKV_K8S_35", "CKV_K8S_43"}
    assert skips(by_digest) == {"CKV_K8S_35"}
    assert container(manifests(chart, by_tag))["imagePullPolicy"] == "Always"
    pinned = container(manifests(chart, by_digest))
    assert pinned["image"].endswith("@" + by_digest["image"]["digest"])
    assert pinned["imagePullPolicy"] == "IfNotPresent"


def test_the_defaults_alone_say_what_an_install_needs(chart: helm_python.Chart) -> None:
    # `helm lint` passes on them (lint mode does not fail on `required`); an install stops.
    with pytest.raises(helm_python.HelmRenderError, match="is required: "):
        chart.render(None, name=RELEASE, namespace=NAMESPACE)
    required = ("image", "repository"), ("queue", "url"), ("global", "datahub", "gms", "url")
    for path in required:
        value: Any = chart.values
        for part in path:
            value = value[part]
        assert value == "", path


SCHEMA_ERRORS = [
    pytest.param(
        {"worker": {"maxConcurrentTasks": "four"}},
        "at '/worker/maxConcurrentTasks': got string, want integer",
        id="wrong-type",
    ),
    pytest.param(
        {"worker": {"maxConcurrentTasks": 65}},
        "at '/worker/maxConcurrentTasks': maximum: got 65, want 64",
        id="above-the-worker-limit",
    ),
    pytest.param(
        {"worker": {"maxConcurrentTask": 4}},
        "at '/worker': additional properties 'maxConcurrentTask' not allowed",
        id="unknown-key",
    ),
    pytest.param(
        {"replicas": 2}, "at '': additional properties 'replicas' not allowed", id="unknown-top"
    ),
    pytest.param(
        {"secrets": {"mapping": {"DB_PASSWORD": "prod/db,prod/other"}}},
        "at '/secrets/mapping/DB_PASSWORD': 'prod/db,prod/other' does not match pattern",
        id="comma-in-a-secret",
    ),
    pytest.param(
        {"secrets": {"sources": ["aws", "vault"]}},
        "at '/secrets/sources/1': value must be one of 'aws', 'file', 'env'",
        id="unknown-secret-source",
    ),
    pytest.param(
        {"podDisruptionBudget": {"maxUnavailable": 0}},
        "at '/podDisruptionBudget/maxUnavailable'",
        id="pdb-blocking-drains",
    ),
    pytest.param(
        {"global": {"datahub": {"gms": {"url": "company.acryl.io/gms"}}}},
        "at '/global/datahub/gms/url': 'company.acryl.io/gms' does not match pattern",
        id="url-without-scheme",
    ),
]


@pytest.mark.parametrize(("overrides", "fragment"), SCHEMA_ERRORS)
def test_schema_refuses_bad_values_naming_them(
    chart: helm_python.Chart, overrides: dict[str, Any], fragment: str
) -> None:
    values = merged(ci_values("minimal-values.yaml"), overrides)

    with pytest.raises(helm_python.HelmValuesError) as checked:
        chart.validate_schema(chart.merge_values(values))
    with pytest.raises(helm_python.HelmValuesError) as rendered:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)

    assert fragment in str(checked.value)
    assert fragment in str(rendered.value)


TEMPLATE_ERRORS = [
    pytest.param(
        {"global": {"datahub": {"gms": {"url": ""}}}},
        "global.datahub.gms.url is required: the DataHub GMS URL",
        id="missing-gms-url",
    ),
    pytest.param({"queue": {"url": ""}}, "queue.url is required: the SQS queue URL", id="no-queue"),
    pytest.param(
        {"image": {"repository": ""}}, "image.repository is required: build the image", id="image"
    ),
    pytest.param(
        {"terminationGracePeriodSeconds": 110},
        "terminationGracePeriodSeconds (110) must be longer than "
        "worker.shutdownGraceSeconds + worker.killGraceSeconds (110)",
        id="grace-too-short",
    ),
    pytest.param(
        {"worker": {"shutdownGraceSeconds": 300}},
        "terminationGracePeriodSeconds (130) must be longer than "
        "worker.shutdownGraceSeconds + worker.killGraceSeconds (310)",
        id="drain-raised-alone",
    ),
    pytest.param(
        {"autoscaling": {"keda": {"enabled": True}, "hpa": {"enabled": True}}},
        "autoscaling.keda.enabled and autoscaling.hpa.enabled are both true",
        id="keda-and-hpa",
    ),
    pytest.param(
        {"autoscaling": {"keda": {"enabled": True, "minReplicaCount": 6, "maxReplicaCount": 2}}},
        "autoscaling.keda.minReplicaCount (6) is above autoscaling.keda.maxReplicaCount (2)",
        id="keda-min-above-max",
    ),
    pytest.param(
        {
            "queue": {"url": "http://localstack:4566/000000000000/datahub-executor"},
            "autoscaling": {"keda": {"enabled": True}},
        },
        "autoscaling.keda.enabled needs aws.region",
        id="keda-without-region",
    ),
    pytest.param(
        {"autoscaling": {"hpa": {"enabled": True}}, "resources": {"requests": {"cpu": None}}},
        "autoscaling.hpa.enabled needs resources.requests.cpu",
        id="hpa-without-cpu-request",
    ),
    pytest.param(
        {"extraEnv": [{"name": "LOG_DIR", "value": "/tmp"}, {"name": "DATAHUB_GMS_TOKEN"}]},
        "extraEnv[1].name: DATAHUB_GMS_TOKEN is set by the chart",
        id="extra-env-overrides-the-chart",
    ),
]


@pytest.mark.parametrize(("overrides", "fragment"), TEMPLATE_ERRORS)
def test_templates_refuse_bad_values_naming_them(
    chart: helm_python.Chart, overrides: dict[str, Any], fragment: str
) -> None:
    values = merged(ci_values("minimal-values.yaml"), overrides)
    chart.validate_schema(chart.merge_values(values))  # each value alone is well-formed

    with pytest.raises(helm_python.HelmRenderError) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)

    assert fragment in str(refused.value)


def environment(found: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as the worker would see it, the token read from its Secret."""
    env: dict[str, str] = {}
    for variable in container(found)["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif "secretKeyRef" in variable["valueFrom"]:
            env[variable["name"]] = TOKEN
        else:  # a ConfigMap key of extraEnv
            env[variable["name"]] = "from-a-config-map"
    return env


@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_the_worker_accepts_the_rendered_environment(
    chart: helm_python.Chart, values_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = chart.merge_values(ci_values(values_file.name))
    found = manifests(chart, values)
    env = environment(found)
    token_ref = next(v for v in container(found)["env"] if v["name"] == "DATAHUB_GMS_TOKEN")

    settings = worker_settings(env, monkeypatch)  # only what the chart renders

    gms = values["global"]["datahub"]["gms"]
    assert token_ref["valueFrom"]["secretKeyRef"] == {
        "name": gms["secretRef"],
        "key": gms["secretKey"],
    }
    assert settings.token == TOKEN
    assert settings.gms_url == gms["url"].rstrip("/")
    assert settings.queue_url == values["queue"]["url"]
    assert settings.worker_id == values["global"]["datahub"]["executor"]["worker_id"]
    worker = values["worker"]
    assert settings.max_concurrent_tasks == worker["maxConcurrentTasks"]
    assert settings.shutdown_grace_seconds == worker["shutdownGraceSeconds"]
    assert settings.kill_grace_seconds == worker["killGraceSeconds"]
    assert settings.health_port == worker["healthPort"]
    # Only a region given: else EKS's webhook may set the cluster's, which secrets named
    # without an ARN live in; the queue is called in the region its URL names anyway.
    assert settings.aws_region == (values["aws"]["region"] or None)
    assert env.get("AWS_DEFAULT_REGION") == env.get("AWS_REGION")  # boto3 in subprocesses
    assert settings.secrets == values["secrets"]["mapping"]
    assert settings.secrets_prefix == (values["secrets"]["prefix"] or None)
    assert settings.secret_sources == (values["secrets"]["sources"] or ["aws", "file", "env"])
    assert settings.secrets_dir == Path("/mnt/secrets")
    # Kubernetes waits for the drain the worker was told to do.
    pod = one(found, "Deployment")["spec"]["template"]["spec"]
    drain = settings.shutdown_grace_seconds + settings.kill_grace_seconds
    assert pod["terminationGracePeriodSeconds"] > drain


def test_numbers_render_as_numbers(chart: helm_python.Chart) -> None:
    # Helm holds values as float64: without a conversion, 2000000 renders as 2e+06.
    values = merged(
        ci_values("minimal-values.yaml"),
        {
            "worker": {"shutdownGraceSeconds": 2_000_000},
            "terminationGracePeriodSeconds": 2_000_100,
            "podDisruptionBudget": {"maxUnavailable": "50%"},
        },
    )
    found = manifests(chart, values)
    deployment = one(found, "Deployment")

    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 2_000_100
    assert environment(found)["EXECUTOR_SHUTDOWN_GRACE_SECONDS"] == "2000000"
    assert one(found, "PodDisruptionBudget")["spec"]["maxUnavailable"] == "50%"
    for doc in (deployment, one(found, "PodDisruptionBudget")):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)


def test_secrets_mapping_is_name_arn_pairs_in_key_order(chart: helm_python.Chart) -> None:
    env = environment(manifests(chart, ci_values("secrets-values.yaml")))

    assert env["EXECUTOR_SECRETS"] == (
        "LOOKER_SECRET=datahub/looker,"
        "PG_PASSWORD=arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/pg-AbCdEf:password::,"
        "SNOWFLAKE_KEY=arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/snowflake-XyZ123"
    )
    assert env["SNOWFLAKE_ACCOUNT"] == "xy12345.eu-west-1"  # extraEnv, after the chart's own
    assert "EXECUTOR_SECRETS" not in environment(manifests(chart, ci_values("minimal-values.yaml")))


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def health_port() -> Iterator[int]:
    """The worker's own health server, alive and not ready (draining), on a free port."""
    server = HealthServer(0, lambda: None, lambda: "draining", Metrics(), "127.0.0.1").start()
    yield server.port
    server.stop()


@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_probes_ask_the_health_server_on_its_port(
    chart: helm_python.Chart, values_file: Path, health_port: int
) -> None:
    worker = container(manifests(chart, ci_values(values_file.name)))
    env = {v["name"]: v.get("value") for v in worker["env"]}
    (port,) = worker["ports"]
    probes = {
        kind: worker[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")
    }

    assert port["name"] == "health"
    assert str(port["containerPort"]) == env["EXECUTOR_HEALTH_PORT"]
    assert {probe["port"] for probe in probes.values()} == {"health"}
    assert probes["startup"]["path"] == probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    # The worker's own server answers those paths (a wrong one would be a 404 forever).
    assert get(health_port, probes["liveness"]["path"]) == 200
    assert get(health_port, probes["readiness"]["path"]) == 503
    assert get(health_port, "/no-such-path") == 404


def test_an_existing_secret_is_mounted_read_only_at_mnt_secrets(
    chart: helm_python.Chart,
) -> None:
    found = manifests(chart, ci_values("secrets-values.yaml"))
    pod = one(found, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(found)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    mount = mounts["secrets"]
    assert mount == {"name": "secrets", "mountPath": "/mnt/secrets", "readOnly": True}
    # A whole Secret volume (no subPath): Kubernetes swaps its ..data link on an update.
    assert volumes["secrets"]["secret"]["secretName"] == "ingestion-secrets"
    assert volumes["secrets"]["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == 10001  # the worker's group may read it
    assert "secrets" not in {
        m["name"]
        for m in container(manifests(chart, ci_values("minimal-values.yaml")))["volumeMounts"]
    }


def test_irsa_role_is_on_the_service_account_the_pods_use(chart: helm_python.Chart) -> None:
    found = manifests(chart, ci_values("secrets-values.yaml"))
    account = one(found, "ServiceAccount")
    pod = one(found, "Deployment")["spec"]["template"]["spec"]

    assert pod["serviceAccountName"] == account["metadata"]["name"] == "datahub-warehouse-executor"
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/datahub-warehouse-executor"
    )
    # No Kubernetes API token: EKS's webhook projects the web identity token by itself.
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values_file", CI_FILES, ids=lambda p: p.name)
def test_the_pod_runs_unprivileged_on_a_read_only_root(
    chart: helm_python.Chart, values_file: Path
) -> None:
    values = chart.merge_values(ci_values(values_file.name))
    found = manifests(chart, values)
    pod = one(found, "Deployment")["spec"]["template"]["spec"]
    worker = container(found)
    context = worker["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    # /tmp is the one writable path: the task directories and HOME are there.
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == values["workDir"]["sizeLimit"]
    assert {"name": "tmp", "mountPath": "/tmp"} in worker["volumeMounts"]
    assert worker["args"] == ["run"]  # after the image's ENTRYPOINT tini -g -- executor


def test_replicas_share_the_queue_under_a_disruption_budget(chart: helm_python.Chart) -> None:
    found = manifests(chart, ci_values("replicas-values.yaml"))
    deployment, budget = one(found, "Deployment"), one(found, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert deployment["spec"]["replicas"] == 3
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        deployment["spec"]["selector"]["matchLabels"] == budget["spec"]["selector"]["matchLabels"]
    )
    # A new pod is ready before an old one stops.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    service = one(found, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "health"
    policy = one(found, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "health", "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_notes_tell_how_to_check_the_worker_started(chart: helm_python.Chart) -> None:
    notes = render(chart, ci_values("minimal-values.yaml"))["templates/NOTES.txt"]
    worker_source = (REPO / "src" / "remote_executor" / "worker.py").read_text()
    log_line = re.search(r'grep "([^"]+)"', notes)

    assert "kubectl -n datahub rollout status deployment/remote-executor" in notes
    assert log_line is not None and f'"{log_line.group(1)}"' in worker_source
    assert "curl -s localhost:8080/readyz" in notes
    assert "executor check" in notes
    assert 'Executor Id (Advanced) to\n"remote"' in notes


def documented_values(text: str) -> dict[str, tuple[str, str | None]]:
    """helm-docs' reading of values.yaml: key path -> (description, `@default` override)."""
    documented: dict[str, tuple[str, str | None]] = {}
    path: list[tuple[int, str]] = []
    description: list[str] | None = None
    default: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# -- "):
            description, default = [stripped.removeprefix("# -- ")], None
        elif stripped.startswith("# @default -- "):
            default = stripped.removeprefix("# @default -- ")
        elif stripped.startswith("#") and description is not None:
            description.append(stripped.lstrip("# "))
        elif key := re.match(r"^( *)([A-Za-z_][\w]*):", line):
            indent = len(key.group(1))
            path = [(i, k) for i, k in path if i < indent] + [(indent, key.group(2))]
            if description is not None:
                documented[".".join(k for _, k in path)] = (" ".join(description), default)
            description = None
    return documented


def leaves(values: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_readme_documents_every_value_with_its_default() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = documented_values(text)
    values = yaml.safe_load(text)
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(
            r"^\| ([\w.]+) \| \w+ \| (.*?) \| .* \|$",
            (CHART / "README.md").read_text(),
            re.M,
        )
        if match.group(1) != "Key"  # the header
    }

    for leaf in leaves(values):  # each value has a `# --` comment on it or on its parent
        assert any(leaf == key or leaf.startswith(key + ".") for key in documented), leaf
    assert set(rows) == set(documented)
    for key, (_, default) in documented.items():
        value: Any = values
        for part in key.split("."):
            value = value[part]
        shown = default if default else f"`{json.dumps(value, separators=(',', ':'))}`"
        assert rows[key] == shown, key
