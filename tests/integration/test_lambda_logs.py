"""Powertools on the local cloud: what each function that ran for a booking wrote to its log.

The local cloud keeps each function's stdout and stderr in ``<log dir>/<function name>.log``, as
CloudWatch Logs keeps a function's log group: Powertools' JSON log lines, and its metrics records
(CloudWatch's embedded metric format, which CloudWatch turns into metrics on AWS).
"""

import json
from pathlib import Path

import pytest

from saga.bookings import start_booking, wait_for
from tests.factories import booking

KEEP_LAMBDA_LOGS = True  # tests/conftest.py: this module's local cloud keeps the functions' logs
STATE_HANDLER = {
    "ReserveFlight": "flight.reserve",
    "ReserveHotel": "hotel.reserve",
    "ProcessPayment": "payment.reserve",
    "RefundPayment": "payment.cancel",
    "CancelHotel": "hotel.cancel",
    "CancelFlight": "flight.cancel",
}
SAGA_HANDLERS = set(STATE_HANDLER.values())


@pytest.fixture(scope="module")
def log_files(deployment, lambda_logs) -> dict[str, Path]:
    """handler -> the log file of each deployed function the saga's states run.

    The reconciler is left out: it runs asynchronously on the FAILED executions of earlier tests,
    so what it writes while a booking runs belongs to another booking.
    """
    functions = deployment.client("lambda").get_paginator("list_functions").paginate()
    return {
        function["Handler"]: lambda_logs / f"{function['FunctionName']}.log"
        for page in functions
        for function in page["Functions"]
        if function["Handler"] in SAGA_HANDLERS
    }


def book(deployment, log_files: dict[str, Path], document: dict) -> tuple[list[str], dict[str, list[dict]]]:
    """Run one booking; return the states it entered and what each function wrote meanwhile, line by line."""
    written = {handler: path.stat().st_size if path.exists() else 0 for handler, path in log_files.items()}
    start_booking(deployment, document)
    outcome = wait_for(deployment, document["booking_id"], timeout=60)
    assert outcome.status != "RUNNING", f"{document['booking_id']} did not finish"
    output = {}
    for handler, path in log_files.items():
        if path.exists() and path.stat().st_size > written[handler]:
            with path.open(encoding="utf-8") as log:
                log.seek(written[handler])
                lines = log.read().splitlines()
            not_json = [line for line in lines if not line.startswith("{")]
            assert not not_json, f"{handler} wrote lines that are not JSON: {not_json[:3]}"
            output[handler] = [json.loads(line) for line in lines]
    return [step.name for step in outcome.path], output


def log_lines(records: list[dict]) -> list[dict]:
    return [record for record in records if "level" in record]


def metrics(records: list[dict]) -> list[tuple[str, dict[str, str], list[str]]]:
    """(namespace, dimensions, metric names) of each metrics record."""
    found = []
    for record in records:
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            (dimensions,) = directive["Dimensions"]
            names = [metric["Name"] for metric in directive["Metrics"]]
            found.append((directive["Namespace"], {name: record[name] for name in dimensions}, names))
    return found


def test_every_function_of_a_compensated_booking_logs_its_booking_id(deployment, log_files):
    states, output = book(deployment, log_files, booking("logs-0001", chaos={"fail_at": "payment"}))

    ran = [STATE_HANDLER[state] for state in states if state in STATE_HANDLER]
    assert set(output) == set(ran) == SAGA_HANDLERS
    for state in states[:-1]:
        lines = log_lines(output[STATE_HANDLER[state]])
        assert lines, f"{state} logged nothing"
        assert {line.get("correlation_id") for line in lines} == {"logs-0001"}, state
        assert {line["step"] for line in lines} == {state}
        assert {line["service"] for line in lines} == {STATE_HANDLER[state].split(".")[0]}
    (failure,) = log_lines(output["payment.reserve"])
    assert (failure["level"], failure["error"]) == ("WARNING", "ChaosFailure")


def test_each_cancel_that_ran_counts_a_compensation_by_its_step(deployment, log_files):
    states, output = book(deployment, log_files, booking("logs-0002", chaos={"fail_at": "hotel"}))

    assert states == ["ReserveFlight", "ReserveHotel", "CancelHotel", "CancelFlight", "BookingFailed"]
    for state in ("CancelHotel", "CancelFlight"):
        service = STATE_HANDLER[state].split(".")[0]
        assert metrics(output[STATE_HANDLER[state]]) == [
            ("BookingSaga", {"service": service, "step": state}, ["CompensationsRun"])
        ]
    assert metrics(output["flight.reserve"]) == [("BookingSaga", {"service": "flight"}, ["ReservationsMade"])]
    assert metrics(output["hotel.reserve"]) == []  # it failed: nothing to count


def test_only_the_last_step_counts_a_confirmed_booking(deployment, log_files):
    states, output = book(deployment, log_files, booking("logs-0003"))

    assert states == ["ReserveFlight", "ReserveHotel", "ProcessPayment", "BookingConfirmed"]
    assert {handler: metrics(records) for handler, records in output.items()} == {
        "flight.reserve": [("BookingSaga", {"service": "flight"}, ["ReservationsMade"])],
        "hotel.reserve": [("BookingSaga", {"service": "hotel"}, ["ReservationsMade"])],
        "payment.reserve": [("BookingSaga", {"service": "payment"}, ["ReservationsMade", "BookingsConfirmed"])],
    }
    assert {line["correlation_id"] for records in output.values() for line in log_lines(records)} == {"logs-0003"}


def test_the_powertools_parameter_names_a_stand_in_of_the_layer_aws_publishes(cloud, assembly):
    """The local cloud publishes a stand-in for AWS's layer at the SSM path the template reads."""
    (path,) = [
        parameter["Default"]
        for parameter in assembly.template["Parameters"].values()
        if parameter["Default"].startswith("/aws/service/powertools/")
    ]
    layer_arn = cloud.client("ssm").get_parameter(Name=path)["Parameter"]["Value"]
    assert ":layer:AWSLambdaPowertoolsPythonV3-python313-arm64:" in layer_arn
    name, version = layer_arn.split(":")[-2:]
    layer = cloud.client("lambda").get_layer_version(LayerName=name, VersionNumber=int(version))
    assert layer["LayerVersionArn"] == layer_arn
    assert layer["Description"].endswith(f" {path.rsplit('/', 1)[1]}")
    assert (layer["CompatibleRuntimes"], layer["CompatibleArchitectures"]) == (["python3.13"], ["arm64"])
