"""Helpers for integration tests: executions started the way a script or the AWS CLI would, and the designs'
bookings read once they have ended."""

import json
import time

from saga.deployment import Deployment
from saga.designs import DesignDeployment, Ending
from saga.localcloud import LocalCloud


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


def endings_once_idle(
    cloud: LocalCloud, design: DesignDeployment, booking_ids: list[str], timeout: float = 120
) -> list[Ending]:
    """Each booking's ending once the local cloud is idle: everything its events set off, redeliveries included,
    has landed (the atomic design is done when its request returns)."""
    cloud.wait_until_idle(timeout)
    endings = [design.ending(booking_id) for booking_id in booking_ids]
    assert [ending for ending in endings if ending.status == "RUNNING"] == []
    return endings
