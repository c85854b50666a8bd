"""Every booking ends fully confirmed, fully undone, or parked for a person: under random faults.

Hypothesis draws a booking (seats and rooms against a fresh flight and hotel of
random capacity, an amount around the payment limit, sometimes malformed) and a
fault schedule over all six functions (transient failures, duplicate delivery,
a reserve that times out after its write, a forced business failure, a cancel
that fails for good), and the ends no catch sees (an oversized state, a park
that fails, the execution stopped or timed out from outside once it enters a
given state), which the reconciler must finish. Each runs as a real execution
on the local cloud, and the invariant is checked once the booking is settled,
from the tables and the dead-letter queue:

- confirmed: exactly its seats, rooms and charge are held;
- compensated or released: nothing is held and capacity is back where it was;
- parked: exactly one dead-letter message, and every service it does not
  report as undone still holds what it took (nothing else is held).

The expected outcome comes from a small model of the saga and its reconciler
(``fault_schedules``), so a fault that changes an outcome it should not (a
transient failure that is not retried, say) fails the test too; an
interruption that lands has no model, so every end it may take is checked
against the invariant. A released booking's status-change event is then
delivered twice more at once, as EventBridge may: nothing changes. ``--schedules
N`` sets how many schedules run (default 200), split into shards that run in
parallel under pytest-xdist, each against its own local cloud.
"""

import itertools
import json
import threading
import time

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings

from booking_saga.ledger import Ledger
from saga.audit import audit
from saga.bookings import Outcome, outcome_of, start_booking, wait_for
from tests.integration import fault_schedules
from tests.integration.fault_schedules import (
    PAYMENT_LIMIT,
    SERVICES,
    UNCAUGHT,
    Expected,
    Scenario,
    document,
    drain_dead_letters,
    expected,
    scenarios,
)

TIMEOUT_SCALE = fault_schedules.TIMEOUT_SCALE  # the module's local cloud (conftest's ``cloud``) runs at it
SHARDS = 4  # each an xdist group of its own: they run on whichever workers are free, each with its local cloud
_numbers = itertools.count(1)


def held(deployment, booking_id: str) -> dict[str, dict]:
    records = {service: deployment.ledger(service).record(booking_id) for service in SERVICES}
    return {service: record for service, record in records.items() if (record or {}).get("status") == "RESERVED"}


def count_faults(figures, scenario: Scenario, parks_refused: bool, interrupted: bool) -> None:
    chaos = scenario.chaos
    figures["faults: transient failures injected"] += sum(chaos.get("transient", {}).values())
    figures["faults: duplicate deliveries"] += len(chaos.get("duplicate", []))
    figures["faults: timeouts after the write"] += "timeout_after_write" in chaos
    figures["faults: forced business failures (chaos)"] += "fail_at" in chaos
    figures["faults: cancels failing for good"] += "fail_cancel" in chaos
    figures["faults: malformed bookings"] += scenario.malformed
    figures["faults: oversized states"] += "oversized_result" in chaos
    figures["faults: parks refused by SQS"] += parks_refused
    figures["faults: stops and timeouts that landed"] += interrupted


def settle(deployment, booking_id: str, timeout: float = 120) -> Outcome:
    """The booking's outcome once it ended and, where no catch saw the end, the reconciler settled it. Its history
    is read only once it ended: on every poll, it cost the suite more than the polling."""
    deadline = time.monotonic() + timeout
    outcome = wait_for(deployment, booking_id, timeout, poll=0.05)
    while outcome.verdict in ("running", "not yet released"):
        assert time.monotonic() < deadline, f"{booking_id} was not settled: {outcome.verdict}"
        time.sleep(0.05)
        outcome = outcome_of(deployment, booking_id)
    return outcome


def interrupt(deployment, cloud, execution_arn: str, how: str, state: str) -> bool:
    """Stop or time out the execution once it enters ``state``; whether that landed (it may end before)."""
    stepfunctions = deployment.client("stepfunctions")
    while stepfunctions.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
        events = stepfunctions.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        if any(event.get("stateEnteredEventDetails", {}).get("name") == state for event in events):
            try:
                if how == "stop":
                    stepfunctions.stop_execution(executionArn=execution_arn, error="Chaos", cause=f"stopped in {state}")
                else:
                    cloud.time_out_execution(execution_arn)
            except (ClientError, ValueError):  # it ended in between: the model's end stands
                pass
            break
        time.sleep(0.01)
    return stepfunctions.describe_execution(executionArn=execution_arn)["status"] in ("ABORTED", "TIMED_OUT")


def redeliver(deployment, execution_arn: str, status: str, copies: int = 2) -> None:
    """Deliver the execution's status-change event to the reconciler ``copies`` times at once."""
    event = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": execution_arn, "stateMachineArn": deployment.state_machine_arn, "status": status},
    }
    lambda_ = deployment.client("lambda")
    errors: list[str] = []

    def deliver() -> None:
        response = lambda_.invoke(FunctionName=deployment.reconciler_function, Payload=json.dumps(event))
        if "FunctionError" in response:
            errors.append(response["Payload"].read().decode())

    runs = [threading.Thread(target=deliver) for _ in range(copies)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert not errors, errors


def parks(scenario: Scenario, model: Expected) -> bool:
    """Whether SQS refuses the park: where the schedule asks it and the state machine parks the booking (not the
    reconciler after an oversized state, nor after an interruption)."""
    return scenario.park_fails and not scenario.interrupt and model.verdict == "parked" and model.failure != UNCAUGHT


def check(deployment, scenario: Scenario, model: Expected | None, outcome: Outcome, ids: tuple[str, str, str]) -> None:
    """The invariant, and the model's outcome where there is one (``model`` is None for a landed interruption)."""
    booking_id, flight_id, hotel_id = ids
    records = held(deployment, booking_id)
    path = [(step.name, step.error) if step.error else step.name for step in outcome.path]
    if model is not None:
        assert (outcome.verdict, set(records)) == (model.verdict, set(model.held)), path
        if model.failure:
            assert outcome.failed_step is not None and outcome.failed_step.error == model.failure, path
        if parks(scenario, model):
            assert outcome.error == "ParkFailed", path  # the state machine could not park it; the reconciler did
    else:
        assert outcome.verdict in ("released", "parked"), (outcome.verdict, path)
        assert outcome.verdict == "parked" or not records, (records, path)
    taken_seats = scenario.seats if "flight" in records else 0
    taken_rooms = scenario.rooms if "hotel" in records else 0
    assert (deployment.ledger("flight").available(flight_id), deployment.ledger("hotel").available(hotel_id)) == (
        scenario.flight_capacity - taken_seats,
        scenario.hotel_capacity - taken_rooms,
    )
    if "flight" in records:
        assert records["flight"]["quantity"] == scenario.seats
    if "hotel" in records:
        assert records["hotel"]["quantity"] == scenario.rooms
    if "payment" in records:
        assert records["payment"]["amount"] == scenario.amount
    parked = [message for message in drain_dead_letters(deployment) if message["saga"]["booking_id"] == booking_id]
    if outcome.verdict == "parked":
        assert len(parked) == 1, path
        undone = set(parked[0]["saga"].get("compensations", {}))
        assert not undone & set(records), "the message reports as undone a service that still holds"
        assert parked[0]["execution_arn"] == outcome.execution_arn
    else:
        assert parked == [], path


@pytest.mark.parametrize(
    "shard", [pytest.param(shard, marks=pytest.mark.xdist_group(f"reliability-{shard}")) for shard in range(SHARDS)]
)
def test_every_fault_schedule_ends_confirmed_undone_or_parked(deployment, cloud, figures, request, shard):
    figures["leaks found"] += 0
    total = request.config.getoption("--schedules")
    schedules = total // SHARDS + (shard < total % SHARDS)
    if schedules == 0:
        pytest.skip("no schedule left for this shard")

    @settings(max_examples=schedules, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenario=scenarios())
    def run(scenario: Scenario) -> None:
        key = f"{shard}-{next(_numbers)}"
        ids = booking_id, flight_id, hotel_id = f"schedule-{key}", f"FLIGHT-{key}", f"HOTEL-{key}"
        Ledger(deployment.table("flight"), "flight").stock(flight_id, scenario.flight_capacity)
        Ledger(deployment.table("hotel"), "hotel").stock(hotel_id, scenario.hotel_capacity)
        model = expected(scenario)
        refuse_park = parks(scenario, model)
        if refuse_park:
            park = deployment.definition()["States"]["SendToDeadLetterQueue"]["Retry"][0]["MaxAttempts"] + 1
            cloud.fail_sends(deployment.dead_letter_queue_url, park)  # SQS is down for the park and its retries
        try:
            arn = start_booking(deployment, document(booking_id, scenario, flight_id, hotel_id)).execution_arn
            landed = scenario.interrupt is not None and interrupt(deployment, cloud, arn, *scenario.interrupt)
            outcome = settle(deployment, booking_id)
        finally:
            cloud.clear_faults()

        figures["schedules run (bookings)"] += 1
        figures[f"outcome: {outcome.verdict}"] += 1
        count_faults(figures, scenario, refuse_park, landed)
        may_hold = model.held if not landed else set(SERVICES) if outcome.verdict == "parked" else set()
        figures["leaks found"] += len(set(held(deployment, booking_id)) - may_hold)
        check(deployment, scenario, None if landed else model, outcome, ids)
        if outcome.verdict == "released":
            before = held(deployment, booking_id), deployment.ledger("flight").available(flight_id)
            redeliver(deployment, arn, outcome.status)
            assert (held(deployment, booking_id), deployment.ledger("flight").available(flight_id)) == before
            figures["redelivered ends reconciled again (no change)"] += 1

    run()
    report = audit(deployment)
    assert report.clean, report.drift
    figures["audit: reservations held after the schedules"] += report.reserved
    figures["audit: drift found"] += len(report.drift)


def test_the_model_knows_the_saga():
    """The oracle itself, on cases whose outcome docs/recovery.md spells out."""
    plain = Scenario(seats=2, rooms=1, flight_capacity=5, hotel_capacity=5, amount=100, malformed=False)
    assert expected(plain) == Expected("confirmed", frozenset(SERVICES), None)
    declined = Scenario(2, 1, 5, 5, PAYMENT_LIMIT + 1, False)
    assert expected(declined) == Expected("compensated", frozenset(), "PaymentDeclined")
    stuck = Scenario(2, 1, 5, 5, 100, False, {"fail_at": "payment", "fail_cancel": "hotel"})
    assert expected(stuck) == Expected("parked", frozenset({"flight", "hotel"}), "ChaosFailure")
    late = Scenario(2, 1, 5, 5, 100, False, {"timeout_after_write": "hotel", "fail_cancel": "hotel"})
    assert expected(late) == Expected("parked", frozenset({"flight", "hotel"}), "Sandbox.Timedout")
    sold_out = Scenario(2, 6, 5, 5, 100, False, {"fail_cancel": "payment"})
    assert expected(sold_out) == Expected("compensated", frozenset(), "SoldOut")
    oversized = Scenario(2, 1, 5, 5, 100, False, {"oversized_result": "hotel"})
    assert expected(oversized) == Expected("released", frozenset(), UNCAUGHT)
    # the reconciler runs every cancel from the last: the payment's, failing for good, parks it with all held
    oversized_stuck = Scenario(2, 1, 5, 5, 100, False, {"oversized_result": "hotel", "fail_cancel": "payment"})
    assert expected(oversized_stuck) == Expected("parked", frozenset({"flight", "hotel"}), UNCAUGHT)
    flaky = Scenario(2, 1, 5, 5, 100, False, {"oversized_result": "flight", "transient": {"flight.cancel": 3}})
    assert expected(flaky) == Expected("parked", frozenset({"flight"}), UNCAUGHT)  # 3 attempts, 3 failures
