"""Helpers for integration tests that start executions the way a script or the AWS CLI would."""

import json
import time

from saga.deployment import Deployment


def raw_execution(deployment: Deployment, name: str, document: dict, timeout: float = 60) -> dict:
    """A StartExecution that bypasses the bookings table; waits for its end and returns DescribeExecution's answer."""
    stepfunctions = deployment.client("stepfunctions")
    arn = stepfunctions.start_execution(
        stateMachineArn=deployment.state_machine_arn, name=name, input=json.dumps(document)
    )["executionArn"]
    deadline = time.monotonic() + timeout
    while (described := stepfunctions.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} did not finish"
        time.sleep(0.05)
    return described
