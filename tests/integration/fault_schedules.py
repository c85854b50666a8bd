"""Fault schedules for the saga, shared by the tests that run them (test_reliability, engines/): hypothesis draws a
booking and the faults injected into it, and a small model of the saga says how it must end.

A schedule is a booking (seats and rooms against a fresh flight and hotel of random capacity, an amount around
the payment limit, sometimes malformed) and its chaos: transient failures, duplicate delivery, a reserve that
times out after its write, a forced business failure, a cancel that fails for good; and the ends no catch sees,
which the reconciler finishes: an oversized state (States.DataLimitExceeded), a park that fails (ParkFailed), and
the execution stopped or timed out from outside once it enters a given state.
"""

import json
from dataclasses import dataclass, field

from hypothesis import strategies as st

from booking_saga import services
from booking_saga.contract import default_contract
from booking_saga.reconciliation import RETRY_PAUSES

SERVICES = tuple(service.name for service in services.SERVICES)
FUNCTIONS = default_contract().functions
PAYMENT_LIMIT = 500_000  # the development stack's, in yen
# A hung handler is stopped after 1.5 s (of 5), its task after 3 s (of 10): short enough to test timeouts often,
# and long enough on a busy 2-core machine, where the slowest handler took 0.2 s and the slowest worker start
# 0.5 s (two shards at once; a task's timeout covers both).
TIMEOUT_SCALE = 0.3
RARELY = [None] * 15  # sampled_from(RARELY + values): the costly faults show up in about 1 schedule in 6
STATES = tuple(state for service in services.SERVICES for state in (service.reserve_state, service.cancel_state))
INTERRUPTIONS = ("stop", "time out")
RECONCILER_ATTEMPTS = 1 + len(RETRY_PAUSES)  # how often the reconciler tries a cancel before it parks the booking
UNCAUGHT = "States.DataLimitExceeded"  # the error of an oversized state, which no catch sees


@dataclass(frozen=True)
class Scenario:
    seats: int
    rooms: int
    flight_capacity: int
    hotel_capacity: int
    amount: int
    malformed: bool
    chaos: dict = field(default_factory=dict)
    park_fails: bool = False  # SQS refuses the state machine's park and its retries, where it parks: ParkFailed
    interrupt: tuple[str, str] | None = None  # ("stop" or "time out", a state): ended from outside once it enters it


@st.composite
def scenarios(draw, uncatchable: bool = True) -> Scenario:
    """A schedule; with ``uncatchable=False`` none of the ends no catch sees (the reconciler's cases)."""
    chaos = {
        "fail_at": draw(st.sampled_from([*RARELY, *SERVICES])),
        "fail_cancel": draw(st.sampled_from([*RARELY, *SERVICES])),
        "timeout_after_write": draw(st.sampled_from([*RARELY, *SERVICES])),
        "transient": draw(
            st.dictionaries(
                st.sampled_from(FUNCTIONS),
                st.integers(1, 3),  # a reserve retries 3 times, so up to 3 transient failures change nothing
                max_size=3,
            )
        ),
        "duplicate": draw(st.lists(st.sampled_from(FUNCTIONS), unique=True, max_size=3)),
        "oversized_result": draw(st.sampled_from([*RARELY, *SERVICES])) if uncatchable else None,
    }
    interrupt = draw(st.sampled_from([*RARELY, *((how, at) for how in INTERRUPTIONS for at in STATES)]))
    return Scenario(
        seats=draw(st.integers(1, 9)),
        rooms=draw(st.integers(1, 9)),
        flight_capacity=draw(st.integers(0, 30)),  # mostly enough, sometimes too few or none
        hotel_capacity=draw(st.integers(0, 30)),
        amount=draw(st.sampled_from([100, 84_000, PAYMENT_LIMIT, PAYMENT_LIMIT + 1])),
        malformed=draw(st.sampled_from([False] * 9 + [True])),
        chaos={key: value for key, value in chaos.items() if value},
        park_fails=uncatchable and draw(st.sampled_from([False] * 3 + [True])),
        interrupt=interrupt if uncatchable else None,
    )


@dataclass(frozen=True)
class Expected:
    verdict: str
    held: frozenset[str]  # services still holding the booking
    failure: str | None  # the error the failing reserve ends with


def expected(scenario: Scenario) -> Expected:
    """The saga as a model: where it fails, what each reserve wrote, which cancels run, and for an end no catch
    sees, what the reconciler's cancels leave. An interrupted schedule has no model once its interruption lands:
    the test checks what every end must satisfy instead."""
    chaos = scenario.chaos
    if scenario.malformed:
        return Expected("refused", frozenset(), "InvalidBooking")  # refused before anything is written
    failed, wrote, failure = first_failure(scenario)
    if failed is None:
        return Expected("confirmed", frozenset(SERVICES), None)
    position = SERVICES.index(failed)
    reserved = set(SERVICES[:position]) | ({failed} if wrote else set())
    if failure == UNCAUGHT:
        return reconciled(scenario, reserved, failure)
    for service in reversed(SERVICES[: position + 1]):  # the cancels, from the failed step's own
        if chaos.get("fail_cancel") == service:
            still = {s for s in reserved if SERVICES.index(s) <= SERVICES.index(service)}
            return Expected("parked", frozenset(still), failure)  # by the state machine, or the reconciler
    return Expected("compensated", frozenset(), failure)


def reconciled(scenario: Scenario, reserved: set[str], failure: str | None) -> Expected:
    """What the reconciler leaves: every cancel, in reverse, each tried ``RECONCILER_ATTEMPTS`` times, until one
    still fails (a cancel failing for good, or more transient failures than its attempts): then it parks."""
    for service in reversed(SERVICES):
        transient = scenario.chaos.get("transient", {}).get(f"{service}.cancel", 0)
        if scenario.chaos.get("fail_cancel") == service or transient >= RECONCILER_ATTEMPTS:
            still = {s for s in reserved if SERVICES.index(s) <= SERVICES.index(service)}
            return Expected("parked", frozenset(still), failure)
    return Expected("released", frozenset(), failure)


def first_failure(scenario: Scenario) -> tuple[str | None, bool, str | None]:
    """The step that fails first, whether it wrote before failing, and its error; (None, False, None) if none does."""
    sold_out = {"flight": scenario.seats > scenario.flight_capacity, "hotel": scenario.rooms > scenario.hotel_capacity}
    for service in SERVICES:
        if scenario.chaos.get("fail_at") == service:
            return service, False, "ChaosFailure"
        if sold_out.get(service):
            return service, False, "SoldOut"
        if service == "payment" and scenario.amount > PAYMENT_LIMIT:
            return service, False, "PaymentDeclined"
        if scenario.chaos.get("timeout_after_write") == service:  # the hang comes before the answer
            return service, True, "Sandbox.Timedout"
        if scenario.chaos.get("oversized_result") == service:
            return service, True, UNCAUGHT
    return None, False, None


def document(booking_id: str, scenario: Scenario, flight_id: str, hotel_id: str) -> dict:
    trip = {
        "booking_id": booking_id,
        "customer_id": "c-42",
        "flight": {"flight_id": flight_id, "seats": scenario.seats},
        "hotel": {"hotel_id": hotel_id, "rooms": scenario.rooms},
        "payment": {"amount": scenario.amount, "currency": "JPY" if not scenario.malformed else "yen"},
    }
    return trip | ({"chaos": scenario.chaos} if scenario.chaos else {})


def drain_dead_letters(deployment) -> list[dict]:
    sqs, messages = deployment.client("sqs"), []
    while batch := sqs.receive_message(
        QueueUrl=deployment.dead_letter_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=deployment.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages
