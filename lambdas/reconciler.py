"""The reconciler: finishes a saga whose execution ended where no catch could see (``booking_saga.reconciliation``).

An EventBridge rule invokes it with each "Step Functions Execution Status Change" event of the saga's state
machine that ended FAILED, TIMED_OUT or ABORTED. Configuration: ``CANCELS`` (the saga's cancels, in the
definition's reverse order: ``[{"step": <state name>, "function": <ARN>}, ...]``), ``DEAD_LETTER_QUEUE_URL``
and ``BOOKINGS_TABLE``. It logs what it did with the booking id, counts ``BookingsReleased`` or
``BookingsParked``, and records it in the bookings table.
"""

import json
import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from booking_saga.executions import BookingRegistry
from booking_saga.observability import logger, metrics, observed
from booking_saga.reconciliation import CLEAN, RELEASED, Cancel, Reconciler, invoker
from booking_saga.service import dynamodb_table


@cache
def _client(service: str) -> Any:
    """Created once per execution environment and reused while the Lambda stays warm."""
    return boto3.client(service)


def _park(message: dict[str, Any]) -> None:
    _client("sqs").send_message(QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"], MessageBody=json.dumps(message))


@observed(correlation_id_path=None)
def handle(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda handler for one status-change event; a failure is retried by Lambda, then parked on its queue."""
    cancels = [Cancel(**cancel) for cancel in json.loads(os.environ["CANCELS"])]
    reconciler = Reconciler(_client("stepfunctions"), cancels, invoker(_client("lambda")), _park)
    done = reconciler.reconcile(event["detail"]["executionArn"])
    logger.set_correlation_id(done.booking_id)
    logger.info("reconciled", extra=done.to_json())
    if done.outcome != CLEAN:
        registry = BookingRegistry(dynamodb_table(os.environ["BOOKINGS_TABLE"]))
        registry.resolve(done.execution_arn, "reconciler", done.outcome, done.to_json())
        metric = "BookingsReleased" if done.outcome == RELEASED else "BookingsParked"
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return done.to_json()
