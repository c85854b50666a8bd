"""The ends no catch sees, executed on the local cloud: a stop, the execution's timeout, an oversized state
(States.DataLimitExceeded) and a park that fails (ParkFailed). Each leaves the saga's reservations held until the
reconciler, invoked by EventBridge with the execution's status-change event, runs the cancels; where it cannot
finish, `saga replay` does. Judged from the executions, the bookings table and the service tables, with
`saga audit` clean after each.
"""

import json
import threading
import time
from collections.abc import Callable

import pytest

from booking_saga.executions import Outcome
from saga.audit import audit
from saga.bookings import outcome_of, start_booking
from tests.factories import booking

BEGUN = ["ReserveFlight", "ReserveHotel"]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return found


def held(deployment, service: str, booking_id: str) -> bool:
    record = deployment.ledger(service).record(booking_id)
    return record is not None and record["status"] == "RESERVED"


def settled(deployment, booking_id: str) -> Outcome:
    """The booking's outcome once its execution ended and, where no catch saw the end, the reconciler settled it."""
    return wait_until(
        lambda: (
            (outcome := outcome_of(deployment, booking_id)).verdict not in ("running", "not yet released") and outcome
        ),
        f"{booking_id} to be settled",
    )


def reconciled(deployment, execution_arn: str) -> dict:
    """What the reconciler recorded for the execution: its outcome and each cancel that released something."""
    item = deployment.registry().table.get_item(Key={"pk": f"resolution#{execution_arn}"}, ConsistentRead=True)
    return item["Item"] | {"details": json.loads(item["Item"]["details"])}


def on_sale(deployment) -> tuple[int, int]:
    return deployment.ledger("flight").available("NH101"), deployment.ledger("hotel").available("TOKYO-GRAND")


def assert_nothing_held(deployment, booking_id: str) -> None:
    for service in ("flight", "hotel", "payment"):
        assert not held(deployment, service, booking_id), f"{service} still holds {booking_id}"
    report = audit(deployment)
    assert report.clean, report.drift


def status_change(deployment, execution_arn: str, status: str) -> dict:
    """The event Step Functions puts on the default bus when an execution ends, as the reconciler receives it."""
    return {
        "version": "0",
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": execution_arn, "stateMachineArn": deployment.state_machine_arn, "status": status},
    }


def invoke_reconciler(deployment, event: dict) -> dict:
    function = deployment.reconciler_function
    response = deployment.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


def stopped_while_the_hotel_hangs(deployment, booking_id: str, end: Callable[[str], None]) -> str:
    """Start a booking whose hotel reserve writes and then hangs, and end its execution there with ``end``."""
    arn = start_booking(deployment, booking(booking_id, chaos={"timeout_after_write": "hotel"})).execution_arn
    wait_until(lambda: held(deployment, "hotel", booking_id), f"{booking_id}'s hotel reservation")
    end(arn)
    return arn


@pytest.mark.parametrize("how", ["stopped", "timed out"])
def test_an_execution_stopped_or_timed_out_mid_saga_is_released_by_the_reconciler(deployment, cloud, saga, how):
    booking_id = f"end-{how.replace(' ', '-')}"
    before = on_sale(deployment)
    stepfunctions = deployment.client("stepfunctions")

    def stop(arn: str) -> None:
        stepfunctions.stop_execution(executionArn=arn, error="Operator", cause="the customer called")

    arn = stopped_while_the_hotel_hangs(deployment, booking_id, stop if how == "stopped" else cloud.time_out_execution)

    outcome = settled(deployment, booking_id)
    assert outcome.status == ("ABORTED" if how == "stopped" else "TIMED_OUT")
    assert [step.name for step in outcome.path] == BEGUN  # no catch ran: the reconciler did the undoing
    assert outcome.verdict == "released"
    resolution = reconciled(deployment, arn)
    assert (resolution["by"], resolution["outcome"]) == ("reconciler", "released")
    assert resolution["details"]["released"] == ["CancelHotel", "CancelFlight"]  # reverse order; nothing charged
    assert on_sale(deployment) == before
    assert_nothing_held(deployment, booking_id)
    code, out, _ = saga("status", booking_id)
    assert (code, "released" in out) == (0, True)


def test_an_oversized_state_fails_past_every_catch_and_the_reconciler_releases_it(deployment):
    before = on_sale(deployment)

    start_booking(deployment, booking("end-oversized", chaos={"oversized_result": "hotel"}))

    outcome = settled(deployment, "end-oversized")
    assert (outcome.status, outcome.error) == ("FAILED", "States.DataLimitExceeded")
    assert [step.name for step in outcome.path] == BEGUN
    assert outcome.verdict == "released"
    assert reconciled(deployment, outcome.execution_arn)["details"]["released"] == ["CancelHotel", "CancelFlight"]
    assert on_sale(deployment) == before
    assert_nothing_held(deployment, "end-oversized")


def park_attempts(deployment) -> int:
    """How many times the state machine tries to park a booking: its first try and its retries."""
    retry = deployment.definition()["States"]["SendToDeadLetterQueue"]["Retry"][0]
    return 1 + retry["MaxAttempts"]


def test_a_booking_the_state_machine_could_not_park_is_parked_by_the_reconciler_then_replayed(deployment, cloud, saga):
    before = on_sale(deployment)
    cloud.fail_sends(deployment.dead_letter_queue_url, park_attempts(deployment))  # SQS is down, then back
    trip = booking("end-park-failed", chaos={"fail_at": "hotel", "fail_cancel": "flight"})

    start_booking(deployment, trip)

    outcome = settled(deployment, "end-park-failed")
    assert (outcome.status, outcome.error) == ("FAILED", "ParkFailed")
    assert [step.name for step in outcome.path][-2:] == ["SendToDeadLetterQueue", "ParkFailed"]
    assert outcome.verdict == "parked"  # the reconciler's CancelFlight failed too, and it could park it
    assert held(deployment, "flight", "end-park-failed")
    assert audit(deployment).parked == ["flight end-park-failed"]

    code, replays = saga("replay", "--json")[:2]

    assert code == 0
    (replay,) = [item for item in json.loads(replays) if item["booking_id"] == "end-park-failed"]
    assert (replay["how"], replay["finished"]) == ("undone", True)
    assert outcome_of(deployment, "end-park-failed").verdict == "undone by replay"
    assert on_sale(deployment) == before
    assert_nothing_held(deployment, "end-park-failed")


def test_an_end_the_reconciler_cannot_finish_waits_on_its_failure_queue_for_replay(deployment, cloud, saga):
    before = on_sale(deployment)
    cloud.fail_sends(deployment.dead_letter_queue_url, 10_000)  # a long outage: neither can park it
    trip = booking("end-unfinished", chaos={"fail_at": "payment", "fail_cancel": "flight"})
    try:
        start_booking(deployment, trip)
        outcome = wait_until(
            lambda: (found := outcome_of(deployment, "end-unfinished")).status != "RUNNING" and found,
            "the execution to end",
        )
        assert outcome.error == "ParkFailed"
        sqs = deployment.client("sqs")
        # EventBridge hands the end to the reconciler, which fails three times (Lambda's two retries), and
        # Lambda puts the event on the reconciler's failure queue.
        wait_until(
            lambda: int(
                sqs.get_queue_attributes(
                    QueueUrl=deployment.reconciler_failures_url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]["ApproximateNumberOfMessages"]
            ),
            "the event on the reconciler's failure queue",
            timeout=60,
        )
        assert outcome_of(deployment, "end-unfinished").verdict == "not yet released"
        assert held(deployment, "flight", "end-unfinished")  # its cancel failed; the hotel's ran before it
    finally:
        cloud.clear_faults()  # SQS is back

    code, out, _ = saga("replay", "--json")

    assert code == 0  # the reconciler parked it again (its cancel still fails), and the replay finished it
    mine = [(item["how"], item["parked"], item["finished"]) for item in json.loads(out)]
    assert mine == [("reconciled", True, False), ("undone", False, True)]
    assert outcome_of(deployment, "end-unfinished").verdict == "undone by replay"
    assert on_sale(deployment) == before
    assert_nothing_held(deployment, "end-unfinished")
    assert saga("replay")[1].startswith("nothing to replay")


def test_the_reconciler_leaves_an_end_its_catches_saw_alone(deployment):
    start_booking(deployment, booking("end-compensated", chaos={"fail_at": "payment"}))
    outcome = settled(deployment, "end-compensated")

    answer = invoke_reconciler(deployment, status_change(deployment, outcome.execution_arn, "FAILED"))

    assert (answer["outcome"], answer["ended_in"]) == ("clean", "BookingFailed")
    assert deployment.registry().resolution(outcome.execution_arn) is None
    assert outcome_of(deployment, "end-compensated").verdict == "compensated"


def test_redelivered_and_concurrent_status_changes_give_back_nothing_twice(deployment):
    """EventBridge delivers at least once: the same end reconciled by several runs at once, and again later,
    releases what the execution held exactly once."""
    before = on_sale(deployment)
    stepfunctions = deployment.client("stepfunctions")
    arn = stopped_while_the_hotel_hangs(
        deployment, "end-redelivered", lambda arn: stepfunctions.stop_execution(executionArn=arn)
    )
    event = status_change(deployment, arn, "ABORTED")
    answers: list[dict] = []
    runs = [threading.Thread(target=lambda: answers.append(invoke_reconciler(deployment, event))) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()

    settled(deployment, "end-redelivered")
    answers.append(invoke_reconciler(deployment, event))  # and once more, after everything is settled

    assert {answer["outcome"] for answer in answers} == {"released"}
    released = [step for answer in answers for step in answer["released"]]
    assert len(released) == len(set(released))  # no cancel released anything twice (EventBridge's run is a 5th)
    assert on_sale(deployment) == before
    assert_nothing_held(deployment, "end-redelivered")
