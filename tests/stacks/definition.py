"""The state machine's definition as Step Functions would read it, from a synthesized template.

CDK writes ``DefinitionString`` as an ``Fn::Join`` of literal JSON fragments and
intrinsics (the Lambda ARNs, the queue URL, the partition). ``resolved_definition``
substitutes each intrinsic with a placeholder of the right shape and parses the
result, so tests can read the ASL as a plain dict.

Placeholders name the logical id they stand for: a Lambda ARN is
``arn:aws:lambda:us-east-1:123456789012:function:<LogicalId>``, so
``function_logical_id`` maps a Task's ``Resource`` back to its function.
"""

import json
from typing import Any

PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
_PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "Stack",
}
_ARN_SERVICE = {
    "AWS::Lambda::Function": ("lambda", "function:"),
    "AWS::SQS::Queue": ("sqs", ""),
    "AWS::DynamoDB::Table": ("dynamodb", "table/"),
    "AWS::SNS::Topic": ("sns", ""),
    "AWS::StepFunctions::StateMachine": ("states", "stateMachine:"),
    "AWS::Logs::LogGroup": ("logs", "log-group:"),
}


def placeholder_arn(template: dict, logical_id: str) -> str:
    """The stand-in for ``Fn::GetAtt [<logical_id>, Arn]``."""
    resource_type = template["Resources"][logical_id]["Type"]
    service, prefix = _ARN_SERVICE.get(resource_type, (resource_type.split("::")[1].lower(), ""))
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{prefix}{logical_id}"


def placeholder_ref(template: dict, logical_id: str) -> str:
    """The stand-in for ``Ref <logical_id>``: a queue URL for a queue, the logical id (a name) otherwise."""
    if logical_id in _PSEUDO:
        return _PSEUDO[logical_id]
    resource_type = template["Resources"][logical_id]["Type"]
    if resource_type == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{logical_id}"
    if resource_type in ("AWS::StepFunctions::StateMachine", "AWS::SNS::Topic"):
        return placeholder_arn(template, logical_id)
    return logical_id


def function_logical_id(resource_arn: str) -> str:
    """The logical id of the function a Task's placeholder ``Resource`` names."""
    prefix = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:"
    if not resource_arn.startswith(prefix):
        raise ValueError(f"{resource_arn!r} is not a placeholder Lambda ARN")
    return resource_arn.removeprefix(prefix)


def resolve(template: dict, value: Any) -> Any:
    """Replace Fn::Join, Fn::GetAtt (Arn) and Ref in ``value`` with placeholder strings."""
    if isinstance(value, list):
        return [resolve(template, item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return placeholder_ref(template, argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            if attribute != "Arn":
                raise ValueError(f"no placeholder for Fn::GetAtt {logical_id}.{attribute}")
            return placeholder_arn(template, logical_id)
        if key == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve(template, part)) for part in parts)
        if key.startswith("Fn::"):
            raise ValueError(f"no placeholder for {key}")
    return {key: resolve(template, item) for key, item in value.items()}


def state_machine_logical_id(template: dict) -> str:
    """The template's one state machine."""
    (logical_id,) = (
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    )
    return logical_id


def resolved_definition(template: dict) -> dict:
    """The ASL of the template's one state machine, with intrinsics replaced by placeholders."""
    properties = template["Resources"][state_machine_logical_id(template)]["Properties"]
    definition = properties["DefinitionString"]
    return json.loads(definition if isinstance(definition, str) else resolve(template, definition))


TERMINAL_TYPES = ("Succeed", "Fail")


def successors(state: dict, *, catches: bool) -> list[str]:
    """Where a state can go next: its ``Next`` (and Choice branches), and its Catch targets if ``catches``."""
    targets = [state["Next"]] if "Next" in state else []
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [state["Default"]] if "Default" in state else []
    if catches:
        targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def paths(states: dict, start: str, *, catches: bool = True) -> list[tuple[str, ...]]:
    """Every path from ``start`` to a state with no successor (a Succeed, a Fail, an ``End``).

    Follows ``Next`` always and Catch targets if ``catches``; a cycle raises, since a saga must terminate.
    """
    found: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...]) -> None:
        following = successors(states[path[-1]], catches=catches)
        if not following:
            found.append(path)
        for target in following:
            if target in path:
                raise ValueError(f"cycle: {' -> '.join((*path, target))}")
            walk((*path, target))

    walk((start,))
    return found
