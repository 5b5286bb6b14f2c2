"""The ECS Fargate template: cfn-lint and checkov find nothing, the IAM it grants is exactly
what the worker calls, and the parameters reach the worker as settings it accepts. No stack can
be deployed here, so tests/deploy/cfn.py evaluates the template for given parameters."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from remote_executor.secrets.aws import SecretRef
from remote_executor.settings import Settings
from remote_executor.wiring import secret_sources
from tests.deploy.cfn import Stack, load
from tests.deploy.conftest import REPO, checkov, tool, worker_settings

TEMPLATE = REPO / "deploy" / "cloudformation" / "executor.yaml"
QUEUE_URL = "https://sqs.us-west-2.amazonaws.com/111122223333/re-acme"
QUEUE_ARN = "arn:aws:sqs:us-west-2:111122223333:re-acme"
GIVEN = {
    "VpcId": "vpc-0a1b2c3d",
    "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "DataHubBaseUrl": "https://acme.acryl.io/gms",
    "DataHubAccessToken": "eyJhbGciOi.token",
    "QueueUrl": QUEUE_URL,
    "QueueArn": QUEUE_ARN,
    "ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/remote-executor",
}
SQS_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
}


def secret_arn(n: int) -> str:
    return f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/source-{n:02d}-Ab{n:02d}Cd"


def stack(**given: str) -> Stack:
    return Stack(load(TEMPLATE), {**GIVEN, **given})


def container(built: Stack) -> dict[str, Any]:
    definitions = built.resources()["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert len(definitions) == 1
    found: dict[str, Any] = definitions[0]
    return found


def worker_environment(built: Stack) -> dict[str, str]:
    """The container's environment, with ECS's secrets as the text ECS would put there."""
    definition = container(built)
    env = {item["Name"]: item["Value"] for item in definition["Environment"]}
    assert len(env) == len(definition["Environment"]), "a variable is set twice"
    for item in definition["Secrets"]:
        env[item["Name"]] = f"value of {item['ValueFrom']}"
    return env


def statements(built: Stack) -> list[tuple[str, dict[str, Any]]]:
    """(resource, statement) for every IAM statement of every role and queue policy."""
    found = []
    for logical, resource in built.resources().items():
        properties = resource["Properties"]
        documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            found.extend((logical, statement) for statement in document["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


PARAMETER_SETS = {
    "existing queue, no secrets": {},
    "existing queue, 10 secrets, 10 variables": {
        "OptionalSecrets": ",".join(f"S{n}={secret_arn(n)}" for n in range(1, 11)),
        "OptionalEnvVars": ",".join(f"V{n}=value-{n}" for n in range(1, 11)),
    },
    "created queue, existing token": {
        "CreateQueue": "true",
        "QueueUrl": "",
        "QueueArn": "",
        "QueueSenderPrincipalArn": "arn:aws:iam::999988887777:role/datahub-gms",
        "DataHubAccessToken": "",
        "ExistingDataHubAccessTokenSecretArn": secret_arn(99),
    },
    "existing cluster, scaling": {"ClusterName": "data", "MinTasks": "1", "MaxTasks": "5"},
}


def test_cfn_lint_finds_nothing() -> None:
    done = subprocess.run(
        [
            tool("cfn-lint"),
            "--regions",
            "ALL_REGIONS",
            "--include-checks",
            "I",
            "--format",
            "json",
            "--",
            str(TEMPLATE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert json.loads(done.stdout) == [], done.stdout
    assert done.returncode == 0, done.stderr


def test_checkov_fails_no_check_and_each_skip_says_why() -> None:
    verdict = checkov("cloudformation", "--file", str(TEMPLATE))

    assert verdict["summary"]["passed"] >= 20
    for skipped in verdict["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 60, f"{skipped['check_id']} on {skipped['resource']}: {reason!r}"


def test_every_resource_has_a_comment_line_above_it() -> None:
    lines = TEMPLATE.read_text().splitlines()
    start = lines.index("Resources:")
    end = lines.index("Outputs:")
    for number in range(start + 1, end):
        if re.fullmatch(r"  [A-Za-z0-9]+:", lines[number]):
            assert lines[number - 1].startswith("  # "), f"no comment above {lines[number]}"


@pytest.mark.parametrize("given", PARAMETER_SETS.values(), ids=PARAMETER_SETS.keys())
def test_no_statement_grants_sqs_or_secrets_manager_on_a_wildcard(given: dict[str, str]) -> None:
    built = stack(**given)
    assert built.rule_failures() == []

    found = statements(built)

    assert found
    for logical, statement in found:
        actions = as_list(statement["Action"])
        if any(action.startswith(("sqs:", "secretsmanager:")) for action in actions):
            for resource in as_list(statement["Resource"]):
                assert isinstance(resource, str) and "*" not in resource, (logical, statement)
            assert not any("*" in action for action in actions), (logical, statement)


def test_the_task_role_may_lease_commands_and_read_exactly_the_listed_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed = {
        "PG_PASSWORD": secret_arn(1),
        "SF_KEY": f"{secret_arn(2)}:private_key::",
        "API_TOKEN": f"{secret_arn(3)}::AWSPREVIOUS:",
    }
    built = stack(OptionalSecrets=",".join(f"{name}={arn}" for name, arn in listed.items()))

    granted = [statement for logical, statement in statements(built) if logical == "TaskRole"]

    by_action = {
        action: statement for statement in granted for action in as_list(statement["Action"])
    }
    assert set(by_action) == {*SQS_ACTIONS, "secretsmanager:GetSecretValue"}
    assert all(by_action[action]["Resource"] == QUEUE_ARN for action in SQS_ACTIONS)
    # What the worker asks Secrets Manager for is what the role may read, and nothing more.
    settings = worker_settings(worker_environment(built), monkeypatch)
    asked = sorted(SecretRef.parse(ref).secret_id for ref in settings.secrets.values())
    assert sorted(by_action["secretsmanager:GetSecretValue"]["Resource"]) == asked
    assert asked == sorted(secret_arn(n) for n in (1, 2, 3))


def test_a_created_queue_gets_a_dead_letter_queue_the_worker_may_send_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = stack(**PARAMETER_SETS["created queue, existing token"])
    made = built.resources()

    settings = worker_settings(worker_environment(built), monkeypatch)

    queue = made["CommandQueue"]["Properties"]
    dead = made["DeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] and dead["SqsManagedSseEnabled"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == built.evaluate(
        {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    )
    # The worker ends a command itself before SQS's redrive would.
    assert queue["RedrivePolicy"]["maxReceiveCount"] > settings.worker_config().max_receives
    assert queue["VisibilityTimeout"] >= 30
    assert settings.queue_url == built.evaluate({"Ref": "CommandQueue"})
    assert settings.dead_letter_queue_url == built.evaluate({"Ref": "DeadLetterQueue"})
    send = [s for _, s in statements(built) if s["Action"] == "sqs:SendMessage"]
    assert [s["Resource"] for s in send if "Principal" not in s] == [
        built.evaluate({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
    ]
    sender = made["CommandQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert sender[0]["Principal"] == {"AWS": "arn:aws:iam::999988887777:role/datahub-gms"}
    assert "TokenSecret" not in made  # the existing secret is used
    assert container(built)["Secrets"] == [
        {"Name": "DATAHUB_GMS_TOKEN", "ValueFrom": secret_arn(99)}
    ]


@pytest.mark.parametrize(
    ("secret_count", "variable_count"), [(0, 10), (10, 0), (3, 7), (8, 1), (1, 1)]
)
def test_optional_secrets_and_env_vars_reach_the_worker_item_by_item(
    secret_count: int, variable_count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each item's condition must test its own parameter and index: in the public DataHub
    # template two OptionalEnvVars conditions tested OptionalSecrets, which only shows when
    # the two lists differ in length.
    secrets = {f"SECRET_{n}": secret_arn(n) for n in range(1, secret_count + 1)}
    variables = {f"VAR_{n}": f"value {n}" for n in range(1, variable_count + 1)}
    built = stack(
        OptionalSecrets=",".join(f"{name}={arn}" for name, arn in secrets.items()),
        OptionalEnvVars=",".join(f"{name}={value}" for name, value in variables.items()),
    )
    env = worker_environment(built)

    settings = worker_settings(env, monkeypatch)

    assert settings.secrets == secrets
    assert {name: env[name] for name in env if name.startswith("VAR_")} == variables
    resolved = secret_sources(settings, environ=env).resolve(sorted(variables), [])
    assert resolved.values == variables  # ${VAR_n} in a recipe reads them (env source)
    read = [s for logical, s in statements(built) if s.get("Sid") == "ReadRecipeSecrets"]
    assert sorted(read[0]["Resource"] if read else []) == sorted(secrets.values())


def test_the_default_parameters_give_a_worker_that_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    built = stack()

    settings = worker_settings(worker_environment(built), monkeypatch)

    assert settings.gms_url == "https://acme.acryl.io/gms"
    assert settings.token == "value of " + built.evaluate({"Ref": "TokenSecret"})
    assert settings.queue_url == QUEUE_URL
    assert settings.worker_id == "remote"
    assert settings.max_concurrent_tasks == 4
    assert settings.aws_region == "eu-west-1"  # the stack's: secrets live here
    assert settings.dead_letter_queue_url is None  # found from the queue's redrive policy
    assert settings.secrets == {}
    assert "ScalableTarget" not in built.resources()


def test_the_container_stops_drains_and_checks_its_health_as_the_worker_expects() -> None:
    definition = container(stack())
    defaults = Settings()

    # ECS waits StopTimeout after SIGTERM; the drain and the kill grace fit inside it.
    assert definition["StopTimeout"] == 120
    assert defaults.shutdown_grace_seconds + defaults.kill_grace_seconds < 120
    assert definition["LinuxParameters"]["InitProcessEnabled"] is True
    assert definition["LinuxParameters"]["Capabilities"] == {"Drop": ["ALL"]}
    assert definition["ReadonlyRootFilesystem"] is True
    assert definition["MountPoints"] == [{"SourceVolume": "tmp", "ContainerPath": "/tmp"}]
    assert definition["HealthCheck"]["Command"] == ["CMD", "executor", "health"]
    assert definition["PortMappings"][0]["ContainerPort"] == defaults.health_port
    assert definition["Image"] == GIVEN["ImageUri"] + ":0.1.0"


def test_the_service_rolls_back_and_scales_on_backlog_per_task() -> None:
    made = stack(MinTasks="2", MaxTasks="6").resources()

    service = made["Service"]["Properties"]
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    target = made["ScalableTarget"]["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == ("2", "6")
    policy = made["ScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metrics = {m["Id"]: m for m in policy["CustomizedMetricSpecification"]["Metrics"]}
    waiting = metrics["waiting"]["MetricStat"]["Metric"]
    assert waiting["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert waiting["Dimensions"] == [{"Name": "QueueName", "Value": "re-acme"}]
    assert metrics["running"]["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
    assert metrics["backlog"]["Expression"] == "waiting / running"
    assert [m["Id"] for m in metrics.values() if m["ReturnData"]] == ["backlog"]
    rules = made["SecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in rules


@pytest.mark.parametrize(
    ("given", "failure"),
    [
        ({"QueueUrl": ""}, "QueueUrl is required unless CreateQueue is true."),
        ({"QueueArn": ""}, "QueueArn is required unless CreateQueue is true."),
        (
            {"CreateQueue": "true"},
            "leave QueueUrl and QueueArn empty when CreateQueue is true.",
        ),
        (
            {"DataHubAccessToken": ""},
            "give DataHubAccessToken or ExistingDataHubAccessTokenSecretArn.",
        ),
        (
            {"ExistingDataHubAccessTokenSecretArn": secret_arn(7)},
            "give only one of DataHubAccessToken and ExistingDataHubAccessTokenSecretArn.",
        ),
    ],
)
def test_rules_reject_parameters_that_cannot_work(given: dict[str, str], failure: str) -> None:
    assert stack(**given).rule_failures() == [failure]


def pattern(parameter: str) -> re.Pattern[str]:
    return re.compile(load(TEMPLATE)["Parameters"][parameter]["AllowedPattern"])


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("DataHubBaseUrl", "https://acme.acryl.io/gms", True),
        ("DataHubBaseUrl", "http://datahub-gms.internal:8080/gms", True),
        ("DataHubBaseUrl", "https://acme.acryl.io", False),
        ("DataHubBaseUrl", "https://acme.acryl.io/gms/", False),
        ("OptionalSecrets", "", True),
        ("OptionalSecrets", f"db-password={secret_arn(1)}", True),
        ("OptionalSecrets", f"PG={secret_arn(1)}:password:AWSCURRENT:", True),
        ("OptionalSecrets", ",".join(f"S{n}={secret_arn(n)}" for n in range(10)), True),
        ("OptionalSecrets", ",".join(f"S{n}={secret_arn(n)}" for n in range(11)), False),
        ("OptionalSecrets", f"PG= {secret_arn(1)}", False),
        ("OptionalSecrets", "PG=team/pg-password", False),  # a name: IAM needs the ARN
        ("OptionalEnvVars", "PG_HOST=db.internal,SF_ROLE=reader", True),
        ("OptionalEnvVars", ",".join(f"V{n}=x" for n in range(10)), True),
        ("OptionalEnvVars", ",".join(f"V{n}=x" for n in range(11)), False),
        ("OptionalEnvVars", "JDBC=a=b", False),
        ("OptionalEnvVars", "1BAD=x", False),
    ],
)
def test_parameter_patterns(parameter: str, value: str, allowed: bool) -> None:
    assert bool(pattern(parameter).fullmatch(value)) is allowed
