"""One booking id, one booking: executed on the local cloud with the synthesized template and the real handlers.

A second execution with a booking id already in use (another execution name, a raw StartExecution, or the
HTTP API once Step Functions has forgotten the first execution) must take nothing, release nothing of the
first booking, and fail with ``BookingConflict``. Checked from the execution histories, the tables, and
``saga audit``.
"""

import json
import threading

import pytest

from booking_saga.executions import HISTORY_EXPIRED, execution_arn_for
from saga.audit import audit
from saga.bookings import outcome_of, start_booking, wait_for
from tests.factories import booking
from tests.integration.executions import raw_execution

FAILED_AT_FLIGHT = ["ReserveFlight", "CancelFlight", "BookingFailed"]


def records(deployment, booking_id: str) -> dict[str, dict]:
    return {service: deployment.ledger(service).record(booking_id) for service in deployment.tables}


def stock(deployment) -> tuple[int | None, int | None]:
    return deployment.ledger("flight").available("NH101"), deployment.ledger("hotel").available("TOKYO-GRAND")


def cancel_result(deployment, execution_arn: str, state: str) -> dict:
    """What a cancel state's Lambda answered, from the execution's history."""
    history = deployment.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    entered = next(
        i for i, event in enumerate(history) if event.get("stateEnteredEventDetails", {}).get("name") == state
    )
    succeeded = next(event for event in history[entered:] if event["type"] == "LambdaFunctionSucceeded")
    return json.loads(succeeded["lambdaFunctionSucceededEventDetails"]["output"])


def states(deployment, execution_arn: str) -> list[str]:
    history = deployment.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return [event["stateEnteredEventDetails"]["name"] for event in history if "stateEnteredEventDetails" in event]


@pytest.fixture(scope="module")
def confirmed(deployment) -> str:
    """A confirmed booking, whose id later executions try to reuse."""
    start_booking(deployment, booking("owned-0001"))
    assert wait_for(deployment, "owned-0001", timeout=60).verdict == "confirmed"
    return "owned-0001"


@pytest.mark.parametrize("fail_at", ["flight", "hotel", "payment"])
@pytest.mark.parametrize("details", ["other", "same"])
def test_a_second_execution_with_a_booking_id_in_use_takes_and_releases_nothing(
    deployment, confirmed, fail_at, details
):
    held, before = records(deployment, confirmed), stock(deployment)
    document = booking(confirmed, chaos={"fail_at": fail_at})
    if details == "other":
        document |= {"customer_id": "someone-else", "hotel": {"hotel_id": "TOKYO-GRAND", "rooms": 3}}

    second = raw_execution(deployment, f"{confirmed}-{details}-{fail_at}", document)

    # Forced to fail at the flight, it fails there before it reads the ledger; else the flight is not its to take.
    assert (second["status"], second["error"]) == (
        "FAILED",
        "ChaosFailure" if fail_at == "flight" else "BookingConflict",
    )
    assert states(deployment, second["executionArn"]) == FAILED_AT_FLIGHT
    assert cancel_result(deployment, second["executionArn"], "CancelFlight")["status"] == "NOT_OWNED"
    assert records(deployment, confirmed) == held
    assert stock(deployment) == before
    assert outcome_of(deployment, confirmed).verdict == "confirmed"
    assert audit(deployment).clean


def test_the_api_refuses_other_details_for_a_used_booking_id_after_step_functions_forgot_it(deployment, cloud):
    api = deployment.api()
    assert api.create(booking("forgotten-0001")).status == 202
    first = wait_for(deployment, "forgotten-0001", timeout=60)
    assert first.verdict == "confirmed"
    held, before = records(deployment, "forgotten-0001"), stock(deployment)

    cloud.forget_execution(first.execution_arn)  # what Step Functions does 90 days after it closed
    other = api.create(booking("forgotten-0001", customer_id="someone-else", chaos={"fail_at": "payment"}))
    same = api.create(booking("forgotten-0001"))
    read = api.get("forgotten-0001")

    assert other.status == 409
    assert other.body["message"] == "booking forgotten-0001 already exists with other details: use another booking id"
    assert (same.status, same.body["verdict"], same.body["execution_arn"]) == (
        200,
        HISTORY_EXPIRED,
        first.execution_arn,
    )
    assert (read.status, read.body["verdict"]) == (200, HISTORY_EXPIRED)
    executions = deployment.client("stepfunctions").list_executions(stateMachineArn=deployment.state_machine_arn)
    assert "forgotten-0001" not in [execution["name"] for execution in executions["executions"]]  # none restarted
    assert records(deployment, "forgotten-0001") == held
    assert stock(deployment) == before


@pytest.mark.parametrize("attempt", range(3))
def test_two_identical_posts_racing_get_one_202_one_200_and_one_execution(deployment, attempt):
    api, booking_id = deployment.api(), f"racing-{attempt:04d}"
    answers, ready = [], threading.Barrier(2)

    def post() -> None:
        ready.wait()
        answers.append(api.create(booking(booking_id)))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answer.status for answer in answers) == [200, 202]
    assert {answer.body["execution_arn"] for answer in answers} == {
        execution_arn_for(deployment.state_machine_arn, booking_id)
    }
    assert wait_for(deployment, booking_id, timeout=60).verdict == "confirmed"
    executions = deployment.client("stepfunctions").list_executions(stateMachineArn=deployment.state_machine_arn)
    assert [execution["name"] for execution in executions["executions"]].count(booking_id) == 1
