"""The same trip three ways, each deployed as a stack of its own: the one list the app, ``saga`` and the benchmark
read the designs from.

- ``orchestration``: Step Functions runs the reserves and, on a failure, the cancels in reverse order;
- ``choreography``: the services react to each other's events on an EventBridge bus, and a saga log keeps what
  happened to each booking;
- ``atomic``: one Lambda reserves seat, room and charge in a single DynamoDB transaction: not a saga, the point
  of comparison (valid only while one account and region own every table).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Design:
    name: str
    stack: str  # the development stage's stack name; other stages append ``-<stage>``
    summary: str
    history: str  # where an operator finds what happened to a booking that failed


ORCHESTRATION = "orchestration"
CHOREOGRAPHY = "choreography"
ATOMIC = "atomic"

DESIGNS: dict[str, Design] = {
    design.name: design
    for design in (
        Design(
            ORCHESTRATION,
            "BookingSaga",
            "a Step Functions state machine runs the steps and, on a failure, the cancels in reverse order",
            "the execution's history in Step Functions (kept 90 days), one state per step, with each error and retry",
        ),
        Design(
            CHOREOGRAPHY,
            "BookingChoreography",
            "the services react to each other's events on an EventBridge bus; no coordinator",
            "the saga log table (every event of the booking, in order, kept for good) and each function's logs",
        ),
        Design(
            ATOMIC,
            "BookingAtomic",
            "one Lambda writes seat, room and charge in a single DynamoDB transaction; nothing to compensate",
            "the booking's record in the bookings table (its outcome and error) and the function's logs",
        ),
    )
}


def stack_name(design: str, stage: str = "dev") -> str:
    """The stack a design deploys as on a stage: ``BookingChoreography``, ``BookingChoreography-production``."""
    base = DESIGNS[design].stack
    return base if stage == "dev" else f"{base}-{stage}"
