"""cdk-nag findings that a grant always raises, acknowledged with the reason, where the grant is made.

cdk-nag names a finding by the resource pattern it saw; these build those names from the construct.
"""

import json
from typing import cast

from aws_cdk import Acknowledgment, CfnElement, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn


def invoking(function: lambda_.IFunction) -> Acknowledgment:
    """``grant_invoke`` allows the function and its versions and aliases: ``<arn>:*``."""
    stack = Stack.of(function)
    logical_id = stack.resolve(stack.get_logical_id(cast(CfnElement, function.node.default_child)))
    return Acknowledgment(
        id=f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
        reason="The function is invoked by ARN and may be named by a version or alias: '<arn>:*'.",
    )


def reading_executions(state_machine: sfn.StateMachine) -> Acknowledgment:
    """``grant_execution`` allows every execution of the machine; cdk-nag names the pattern by its name."""
    arn = Stack.of(state_machine).resolve(state_machine.state_machine_arn)
    name = json.dumps({"Fn::Select": [6, {"Fn::Split": [":", arn]}]}, separators=(",", ":"))
    return Acknowledgment(
        id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{name}:*]",
        reason="Executions are named by booking id at run time; only this state machine's are readable.",
    )
