"""Powertools in the handlers: JSON log lines carrying the booking id, and the metrics each outcome counts.

Powertools writes both to stdout: a log line has a ``level``, a metrics record (CloudWatch's embedded
metric format) an ``_aws`` section.
"""

import json
import os
import subprocess
import sys

import pytest

import flight
from booking_saga import observability
from booking_saga.contract import ChaosFailure, InvalidBooking
from tests.factories import booking
from tests.lambdas.support import EXECUTION, NAMESPACE, LambdaContext


def _output(capsys) -> tuple[list[dict], list[dict]]:
    """The log lines and the metrics records written since the last call."""
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [r for r in records if "level" in r], [r for r in records if "_aws" in r]


def _metrics(record: dict) -> dict[str, float]:
    """Metric name -> value of one metrics record, checked to be in the stack's namespace."""
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    return {metric["Name"]: record[metric["Name"]] for metric in directive["Metrics"]}


def _dimensions(record: dict) -> dict[str, str]:
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    (dimensions,) = directive["Dimensions"]
    return {name: record[name] for name in dimensions}


# ---------------------------------------------------------------- logs


def test_reserve_and_cancel_log_one_line_each_with_the_booking_id_as_correlation_id(stock, invoke, capsys):
    stock("flight", "NH101", 5)

    invoke("flight", "reserve", booking("trip-0042"), step="ReserveFlight")
    invoke("flight", "cancel", booking("trip-0042"), step="CancelFlight")

    logs, _ = _output(capsys)
    assert [(line["level"], line["message"], line["step"], line["status"]) for line in logs] == [
        ("INFO", "reserve succeeded", "ReserveFlight", "RESERVED"),
        ("INFO", "cancel succeeded", "CancelFlight", "CANCELLED"),
    ]
    assert {line["correlation_id"] for line in logs} == {"trip-0042"}
    assert {line["service"] for line in logs} == {"flight"}
    assert logs[1]["released"] is True


def test_each_invocation_logs_its_own_booking_id_and_step(stock, invoke, capsys):
    """Nothing carries over from one warm invocation to the next: not the booking id, not the step."""
    stock("hotel", "TOKYO-GRAND", 5)

    invoke("hotel", "reserve", booking("trip-0001"), step="ReserveHotel")
    invoke("hotel", "reserve", booking("trip-0002"), step="ReserveHotel")
    invoke("hotel", "cancel", "not a booking")

    first, second, third = _output(capsys)[0]
    assert (first["correlation_id"], second["correlation_id"]) == ("trip-0001", "trip-0002")
    assert "correlation_id" not in third
    assert third["step"] == ""
    assert third["status"] == "NOTHING_TO_CANCEL"


def test_a_refused_reserve_logs_a_warning_naming_the_error_and_counts_nothing(stock, invoke, capsys):
    stock("flight", "NH101", 1)

    with pytest.raises(Exception, match="ReserveFlight: flight NH101 has 1 left"):
        invoke("flight", "reserve", booking("trip-0007"), step="ReserveFlight")

    logs, records = _output(capsys)
    (line,) = logs
    assert (line["level"], line["message"], line["error"]) == ("WARNING", "reserve failed", "SoldOut")
    assert line["reason"] == "ReserveFlight: flight NH101 has 1 left, 2 requested"
    assert (line["correlation_id"], line["step"], line["service"]) == ("trip-0007", "ReserveFlight", "flight")
    assert records == []


def test_a_chaos_failure_logs_a_warning(invoke, capsys):
    with pytest.raises(ChaosFailure):
        invoke("hotel", "reserve", booking("trip-0008", chaos={"fail_at": "hotel"}), step="ReserveHotel")

    (line,) = _output(capsys)[0]
    assert (line["level"], line["error"], line["correlation_id"]) == ("WARNING", "ChaosFailure", "trip-0008")


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("service", "confirms", "counted"),
    [
        ("payment", "true", True),  # the stack's last step
        ("payment", None, False),
        ("payment", "false", False),
        ("flight", None, False),
        ("flight", "true", True),  # the environment decides, not the service's name
    ],
)
def test_a_reserve_counts_a_confirmed_booking_only_where_its_function_confirms_bookings(
    monkeypatch, stock, invoke, capsys, service, confirms, counted
):
    if confirms is None:
        monkeypatch.delenv("CONFIRMS_BOOKING", raising=False)
    else:
        monkeypatch.setenv("CONFIRMS_BOOKING", confirms)
    stock("flight", "NH101", 5)

    invoke(service, "reserve", booking(), step="AnyStep")

    (record,) = _output(capsys)[1]
    expected = {"ReservationsMade": [1.0]} | ({"BookingsConfirmed": [1.0]} if counted else {})
    assert _metrics(record) == expected
    assert _dimensions(record) == {"service": service}


@pytest.mark.parametrize("chaos", [None, {"duplicate": ["payment.reserve"]}])
def test_a_replayed_reserve_is_counted_as_a_replay_not_as_a_reservation_or_a_confirmed_booking(
    monkeypatch, invoke, capsys, chaos
):
    """A retry of a reserve whose first attempt wrote (a lost response, a timeout after the write), or a duplicate
    delivery, takes nothing more; counting it again would inflate ReservationsMade and BookingsConfirmed."""
    monkeypatch.setenv("CONFIRMS_BOOKING", "true")
    trip = booking(chaos=chaos) if chaos else booking()
    invoke("payment", "reserve", trip, step="ProcessPayment")
    (first,) = _output(capsys)[1]

    invoke("payment", "reserve", trip, step="ProcessPayment")

    (replay,) = _output(capsys)[1]
    assert _metrics(first) == {"ReservationsMade": [1.0], "BookingsConfirmed": [1.0]}
    assert _metrics(replay) == {"ReservationsReplayed": [1.0]}


@pytest.mark.parametrize("reserved", [True, False])
def test_a_cancel_counts_a_compensation_run_by_its_step(stock, invoke, capsys, reserved):
    stock("hotel", "TOKYO-GRAND", 5)
    if reserved:
        invoke("hotel", "reserve", booking(), step="ReserveHotel")
        capsys.readouterr()

    invoke("hotel", "cancel", booking(), step="CancelHotel")

    (record,) = _output(capsys)[1]
    assert _metrics(record) == {"CompensationsRun": [1.0]}
    assert _dimensions(record) == {"service": "hotel", "step": "CancelHotel"}
    assert record["released"] is reserved


def test_a_failing_cancel_counts_a_compensation_failure_and_still_fails(invoke, capsys):
    with pytest.raises(ChaosFailure, match=r"^RefundPayment: forced to fail by chaos.fail_cancel=payment$"):
        invoke("payment", "cancel", booking("trip-0009", chaos={"fail_cancel": "payment"}), step="RefundPayment")

    logs, (record,) = _output(capsys)
    assert _metrics(record) == {"CompensationFailures": [1.0]}
    assert _dimensions(record) == {"service": "payment", "step": "RefundPayment"}
    (line,) = logs
    assert (line["level"], line["message"], line["error"]) == ("WARNING", "cancel failed", "ChaosFailure")
    assert line["correlation_id"] == "trip-0009"


def test_a_cancel_failing_unexpectedly_is_counted_and_logged_as_an_error(monkeypatch, dynamodb, invoke, capsys):
    monkeypatch.setattr(flight.service, "table", lambda: dynamodb.Table("no-such-table"))
    monkeypatch.setattr(observability.metrics, "service", "flight")

    with pytest.raises(Exception, match="ResourceNotFoundException"):
        flight.cancel(
            {"step": "CancelFlight", "execution": EXECUTION, "booking": booking("trip-0010")}, LambdaContext()
        )

    logs, (record,) = _output(capsys)
    assert _metrics(record) == {"CompensationFailures": [1.0]}
    (line,) = logs
    assert (line["level"], line["message"], line["correlation_id"]) == ("ERROR", "cancel failed", "trip-0010")
    assert "ResourceNotFoundException" in line["exception"]


# ---------------------------------------------------------------- the decorator on odd calls


@pytest.mark.parametrize(
    "event",
    [
        "a string",
        ["a", "list"],
        17,
        None,
        {"booking": "a string"},
        {"booking": {"booking_id": {"nested": ["object"]}}},
        {"booking": {"booking_id": 12}},
        {"step": ["not", "a", "string"], "booking": {"booking_id": "x" * 10_000}},
    ],
)
def test_an_odd_event_ends_as_it_did_without_powertools(invoke, capsys, event):
    """A refused reserve and a no-op cancel, never a crash in the logging or the metrics around them."""
    with pytest.raises(InvalidBooking):
        flight.reserve(event, LambdaContext())
    result = flight.cancel(event, LambdaContext())

    assert (result["status"], result["released"]) == ("NOTHING_TO_CANCEL", False)
    logs, records = _output(capsys)
    assert [line["level"] for line in logs] == ["WARNING", "INFO"]
    assert [_metrics(record) for record in records] == [{"CompensationsRun": [1.0]}]


def test_a_handler_called_without_a_context_runs(monkeypatch, stock, invoke, capsys):
    """Scripts and the benchmark's cold-start probe call handlers with no context; Lambda never does."""
    stock("flight", "NH101", 5)

    result = flight.reserve({"step": "ReserveFlight", "execution": EXECUTION, "booking": booking("trip-0011")}, None)

    assert result["status"] == "RESERVED"
    (line,) = _output(capsys)[0]
    assert line["correlation_id"] == "trip-0011"


def test_observed_takes_another_correlation_id_path_or_none(powertools, capsys):
    @observability.observed(correlation_id_path="pathParameters.booking_id")
    def by_path(event, context):
        observability.logger.info("handled")
        return "done"

    @observability.observed(correlation_id_path=None)
    def by_hand(event, context):
        observability.logger.set_correlation_id(event["id"])
        observability.logger.info("handled")
        return "done"

    assert by_path({"pathParameters": {"booking_id": "trip-0012"}}, LambdaContext()) == "done"
    assert by_path("not an object", LambdaContext()) == "done"
    assert by_hand({"id": "trip-0013"}, LambdaContext()) == "done"

    logs, records = _output(capsys)
    assert [line.get("correlation_id") for line in logs] == ["trip-0012", None, "trip-0013"]
    assert records == []  # nothing counted, nothing flushed (and no warning either: see pyproject.toml)


def test_keys_one_invocation_appends_do_not_reach_the_next_ones_lines(powertools, capsys):
    @observability.observed
    def handler(event, context):
        if "tag" in event:
            observability.logger.append_keys(tag=event["tag"])
        observability.logger.info("handled")

    handler({"tag": "first", "booking": {"booking_id": "trip-0014"}}, LambdaContext())
    handler({}, LambdaContext())

    first, second = _output(capsys)[0]
    assert (first["tag"], first["correlation_id"]) == ("first", "trip-0014")
    assert "tag" not in second
    assert "correlation_id" not in second


@pytest.mark.parametrize(
    ("environment", "traced"),
    [
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}, True),  # Lambda, with the daemon beside it
        ({"AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({}, False),  # the local cloud and the tests: no daemon to send traces to
    ],
)
def test_handlers_are_traced_only_where_x_ray_takes_the_traces(monkeypatch, environment, traced):
    for name in ("AWS_XRAY_DAEMON_ADDRESS", "POWERTOOLS_TRACE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert observability.tracing() is traced


def test_importing_a_handler_without_x_ray_leaves_the_x_ray_sdk_unloaded():
    """The SDK is about a third of a cold start's import; a function that cannot send traces does not pay it."""
    code = "import sys, flight; print('aws_xray_sdk' in sys.modules)"
    environment = {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
