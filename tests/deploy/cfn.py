"""What a CloudFormation template becomes for given parameters, since no stack can be made here.

Evaluates the intrinsic functions the executor's template uses (Ref, Fn::If, Fn::Equals,
Fn::Not, Fn::And, Fn::Or, Condition, Fn::Split, Fn::Select, Fn::Join, Fn::Sub, Fn::GetAtt) the
way CloudFormation does; anything else raises, so a function added to the template later fails
the tests loudly instead of passing through unevaluated. Resources answer Ref and GetAtt with
made-up but well-formed names, ARNs and URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, ...) turned into their long forms."""


def _short_form(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _short_form)


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)
    return loaded


def _select(arguments: list[Any]) -> Any:
    index, items = arguments
    assert int(index) < len(items), f"Fn::Select index {index} of {items!r}"
    return items[int(index)]


# The functions that take their arguments evaluated; CloudFormation compares as strings.
_ON_VALUES: dict[str, Callable[[list[Any]], Any]] = {
    "Fn::Equals": lambda args: str(args[0]) == str(args[1]),
    "Fn::Not": lambda args: not args[0],
    "Fn::And": all,
    "Fn::Or": any,
    "Fn::Split": lambda args: args[1].split(args[0]),
    "Fn::Select": _select,
    "Fn::Join": lambda args: args[0].join(str(item) for item in args[1]),
}


class _NoValue:
    """AWS::NoValue: the property or list item that holds it disappears."""


NO_VALUE = _NoValue()


@dataclass
class Stack:
    """The template with every parameter set: conditions, resources and values evaluated."""

    template: dict[str, Any]
    given: dict[str, str]
    region: str = "eu-west-1"
    account: str = "123456789012"
    name: str = "executor"
    parameters: dict[str, Any] = field(init=False)
    _conditions: dict[str, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        declared = self.template["Parameters"]
        unknown = set(self.given) - set(declared)
        assert not unknown, f"not parameters of the template: {sorted(unknown)}"
        self.parameters = {}
        for name, spec in declared.items():
            raw = self.given.get(name, spec.get("Default"))
            assert raw is not None, f"parameter {name} has no default and was not given"
            raw = str(raw)
            self.parameters[name] = raw.split(",") if spec["Type"].startswith("List<") else raw

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            value = self.evaluate(self.template["Conditions"][name])
            assert isinstance(value, bool), f"condition {name} is not a boolean: {value!r}"
            self._conditions[name] = value
        return self._conditions[name]

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this stack would create, with their properties evaluated."""
        made = {}
        for logical, resource in self.template["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            made[logical] = {
                "Type": resource["Type"],
                "Properties": self.evaluate(resource.get("Properties", {})),
            }
        return made

    def rule_failures(self) -> list[str]:
        """The AssertDescription of every rule assertion these parameters break."""
        failures = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.evaluate(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.evaluate(assertion["Assert"]):
                    failures.append(assertion["AssertDescription"])
        return failures

    def evaluate(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.evaluate(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key in {"Ref", "Condition"} or key.startswith("Fn::"):
                return self._function(key, argument)
        evaluated = {key: self.evaluate(value) for key, value in node.items()}
        return {key: value for key, value in evaluated.items() if value is not NO_VALUE}

    def _function(self, key: str, argument: Any) -> Any:
        if key == "Ref":
            return self._ref(argument)
        if key == "Condition":
            return self.condition(argument)
        if key == "Fn::If":
            name, when_true, when_false = argument
            return self.evaluate(when_true if self.condition(name) else when_false)
        if key == "Fn::GetAtt":
            return self._get_att(*argument)
        if key == "Fn::Sub":
            return self._sub(argument)
        if key not in _ON_VALUES:
            raise AssertionError(f"{key} is not evaluated by tests/deploy/cfn.py")
        return _ON_VALUES[key](self.evaluate(argument))

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.name,
            "AWS::Partition": "aws",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.template["Resources"][name]
        assert self._exists(name), f"Ref to {name}, which these parameters do not create"
        if resource["Type"] == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.name}-{name}"
        if resource["Type"] == "AWS::SecretsManager::Secret":
            return self._get_att(name, "Arn")
        return f"{self.name}-{name}"

    def _get_att(self, name: str, attribute: str) -> str:
        assert self._exists(name), f"GetAtt of {name}, which these parameters do not create"
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:aws:sqs:{self.region}:{self.account}:{self.name}-{name}"
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return f"{self.name}-{name}"
        if kind == "AWS::SecretsManager::Secret" and attribute == "Arn":
            secret = f"{self.name}-{name}-Ab12Cd"
            return f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:{secret}"
        if attribute == "Arn":
            service = kind.split("::")[1].lower()
            return f"arn:aws:{service}::{self.account}:{name}"
        return f"{self.name}-{name}-{attribute}"

    def _exists(self, name: str) -> bool:
        condition = self.template["Resources"][name].get("Condition")
        return condition is None or self.condition(condition)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self.evaluate(value) for key, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name:
                return self._get_att(*name.split(".", 1))
            value = self._ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return _SUB_VARIABLE.sub(replace, text)
