"""The choreographed saga: the services react to each other's events on an EventBridge bus; nothing coordinates them.

The flow follows ``SERVICES`` (flight, hotel, payment):

    BookingRequested ─► ReserveFlight ─► FlightReserved ─► ReserveHotel ─► HotelReserved ─► ProcessPayment
        ─► PaymentProcessed ─► (bookings) BookingConfirmed

A reserve that fails emits ``<Step>Failed`` (``ProcessPaymentFailed``); the failing service's cancel reacts, emits
``<Service>Cancelled``, which the service before it reacts to, and so on down to the first, after whose
``FlightCancelled`` the bookings service emits ``BookingFailed``. As in the orchestrated design, the failing step's
own cancel runs too (its write may have landed before it failed).

Each service's reserve and cancel are the very handlers the state machine runs (``SagaService``), driven by events
instead: the saga instance's id (``saga_id``, assigned when the booking is accepted) owns what they reserve, and
every event carries it, the booking, and its place in the saga (``seq``, one more than the event it answers).
Events arrive at least once and possibly late, so:

- a reserve or cancel delivered twice does its work once (the ledger), and a reserve arriving after its own cancel
  meets the tombstone and does nothing;
- each service decides once whether its step succeeded or failed (a ``decision#<saga>`` item in its own table,
  written conditionally): a duplicate delivery that would succeed after the step was declared failed, or fail
  after it succeeded, stays silent, so no saga moves on past a failed step or undoes a confirmed one;
- a reserve that crashes or times out (no event from it) is reported by Lambda itself: its on-failure destination
  puts an invocation record on the bus, and the service's own cancel declares the step failed;
- a cancel that keeps failing is reported the same way, and the bookings service parks the booking: a
  ``CompensationFailed`` event carrying the state (the orchestrated design's dead-letter message), which a rule
  delivers to the parking queue.

The bookings service keeps the saga log: every event of every booking, in the order of the saga (``seq``), from
which ``saga status``, ``history``, ``audit`` and ``replay`` read; it is what a coordinator otherwise keeps.
"""

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from booking_saga.contract import BookingCancelled, BusinessError, InvalidBooking, TransientFailure, parse_owner
from booking_saga.service import SagaService, retrying
from booking_saga.services import SERVICES, Service

REQUESTED = "BookingRequested"
CONFIRMED = "BookingConfirmed"
FAILED = "BookingFailed"
PARKED = "CompensationFailed"
# What Lambda puts on the bus for an asynchronous invocation whose attempts all failed (its on-failure destination).
# The documentation names the source aws.lambda; records written before it did say lambda.
FAILURE_RECORD = "Lambda Function Invocation Result - Failure"
LAMBDA_SOURCES = ("aws.lambda", "lambda")
SOURCE_PREFIX = "booking."
BOOKINGS_SOURCE = "booking.bookings"


def reserved_event(service: Service) -> str:
    """What a reserve that succeeded emits, from its state's verb: ReserveFlight -> FlightReserved,
    ProcessPayment -> PaymentProcessed."""
    verb, noun = _split(service.reserve_state)
    return f"{noun}{verb}d" if verb.endswith("e") else f"{noun}{verb}ed"


def failed_event(service: Service) -> str:
    """What a reserve that failed emits: ``<its state>Failed`` (ReserveHotelFailed)."""
    return f"{service.reserve_state}Failed"


def cancelled_event(service: Service) -> str:
    """What a cancel emits once done: ``<Service>Cancelled`` (HotelCancelled)."""
    return f"{service.name.capitalize()}Cancelled"


def _split(state: str) -> tuple[str, str]:
    for index in range(1, len(state)):
        if state[index].isupper():
            return state[:index], state[index:]
    return state, ""


@dataclass(frozen=True)
class Reaction:
    """One rule of the flow: on any of the events ``on``, ``service``'s ``action`` runs as ``step``, and emits one
    of ``emits``."""

    on: tuple[str, ...]
    step: str
    service: Service
    action: str  # "reserve" or "cancel"
    emits: tuple[str, ...]


def reactions(services: tuple[Service, ...] = SERVICES) -> list[Reaction]:
    """The services' reactions, reserves in order then cancels in order: what the stack's rules are made from."""
    triggers = [REQUESTED, *(reserved_event(service) for service in services[:-1])]
    flow = [
        Reaction(
            (trigger,), service.reserve_state, service, "reserve", (reserved_event(service), failed_event(service))
        )
        for trigger, service in zip(triggers, services, strict=True)
    ]
    for index, service in enumerate(services):
        on = (failed_event(service), *(cancelled_event(later) for later in services[index + 1 : index + 2]))
        flow.append(Reaction(on, service.cancel_state, service, "cancel", (cancelled_event(service),)))
    return flow


def ends(services: tuple[Service, ...] = SERVICES) -> dict[str, str]:
    """The events after which the bookings service declares how a booking ended."""
    return {reserved_event(services[-1]): CONFIRMED, cancelled_event(services[0]): FAILED}


def reaction_to(event: str, services: tuple[Service, ...] = SERVICES) -> Reaction | None:
    """The service reaction an event starts: every saga event but the ends has exactly one."""
    return next((reaction for reaction in reactions(services) if event in reaction.on), None)


def compensation_chain(failed_step: str, services: tuple[Service, ...] = SERVICES) -> list[str]:
    """What a failure of ``failed_step`` runs: its own cancel, each earlier service's, then ``BookingFailed``."""
    position = next(index for index, service in enumerate(services) if service.reserve_state == failed_step)
    return [service.cancel_state for service in reversed(services[: position + 1])] + [FAILED]


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class SagaEvent:
    """A saga event's detail: whose saga, its place in it, the booking, and what the step that emitted it found."""

    saga_id: str
    seq: int
    booking: dict[str, Any]
    step: str | None = None
    result: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None  # {"step", "error", "cause"} of the step that failed
    parked: dict[str, Any] | None = None  # the parked state, on CompensationFailed
    at: str = ""

    @property
    def booking_id(self) -> str:
        return str(self.booking.get("booking_id"))

    def answer(self, step: str, **fields: Any) -> "SagaEvent":
        """The event a step emits in answer to this one: the same saga, booking and failure, the next place."""
        fresh = {"result": None, "parked": None} | fields
        return dataclasses.replace(self, seq=self.seq + 1, step=step, at=now(), **fresh)

    def to_json(self) -> dict[str, Any]:
        detail = {"booking_id": self.booking_id, "saga_id": self.saga_id, "seq": self.seq, "booking": self.booking}
        extra = {"step": self.step, "result": self.result, "failure": self.failure, "parked": self.parked}
        return detail | {key: value for key, value in extra.items() if value is not None} | {"at": self.at}

    @classmethod
    def from_json(cls, detail: object) -> "SagaEvent":
        """A saga event's detail, or ``InvalidBooking`` for one no step can answer (no saga, no place)."""
        if not isinstance(detail, dict) or type(detail.get("seq")) is not int:
            raise InvalidBooking("a saga event names its saga (saga_id), its place (seq) and the booking")
        booking = detail.get("booking")
        return cls(
            saga_id=parse_owner(detail.get("saga_id")),
            seq=detail["seq"],
            booking=booking if isinstance(booking, dict) else {},
            step=detail.get("step"),
            result=detail.get("result"),
            failure=detail.get("failure"),
            parked=detail.get("parked"),
            at=str(detail.get("at", "")),
        )


class Bus:
    """Puts saga events on the stack's bus (``PutEvents``), as ``source``."""

    def __init__(self, client: Any, bus: str, source: str):
        self.client = client
        self.bus = bus
        self.source = source

    def emit(self, detail_type: str, event: SagaEvent) -> None:
        """PutEvents answers per entry; an entry it did not take is a failure worth retrying."""
        entry = {
            "EventBusName": self.bus,
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": json.dumps(event.to_json(), default=str),
        }
        answer = self.client.put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            failed = answer["Entries"][0]
            raise TransientFailure(f"the bus did not take {detail_type}: {failed.get('ErrorCode')}")


# ---------------------------------------------------------------- a service's step, decided once

SUCCEEDED_STEP, FAILED_STEP = "succeeded", "failed"


class Decision:
    """Whether a service's step of one saga succeeded or failed, decided once (a conditional write in the
    service's own table): the first to decide wins, and every later delivery reads the same answer."""

    def __init__(self, table: Any, saga_id: str):
        self.table = table
        self.key = {"pk": f"decision#{saga_id}"}

    def read(self) -> str | None:
        item = self.table.get_item(Key=self.key, ConsistentRead=True).get("Item")
        return None if item is None else str(item["outcome"])

    def decide(self, outcome: str) -> str:
        """Record ``outcome`` unless the step was decided already; the outcome that stands."""
        try:
            self.table.put_item(
                Item={**self.key, "outcome": outcome, "decided_at": now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return self.read() or outcome
        return outcome


# ---------------------------------------------------------------- a participant: one service's reserve and cancel


@dataclass
class Participant:
    """One service of the choreography: ``service`` is its ``SagaService`` (the orchestrated design's handlers),
    ``bus`` where it emits, ``retries`` its in-process retries of transient failures."""

    service: SagaService
    bus: Callable[[], Bus]
    retries: int

    @property
    def spec(self) -> Service:
        return self.service.spec

    def reserve(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        """On the event before it: reserve for the saga, decide the step, emit ``<X>Reserved`` or ``<Step>Failed``.
        A step already decided, or a reserve its own cancel has overtaken, emits nothing."""
        incoming = SagaEvent.from_json(event.get("detail"))
        step, decision = self.spec.reserve_state, Decision(self.service.table(), incoming.saga_id)
        if decision.read() == FAILED_STEP:
            return {"step": step, "outcome": "ignored: the step has failed already"}
        payload = {"step": step, "execution": incoming.saga_id, "booking": incoming.booking}
        try:
            result = retrying(lambda: self.service.handle_reserve(payload, context), self.retries)
        except BookingCancelled:
            return {"step": step, "outcome": "ignored: its cancel has run already"}
        except BusinessError as error:
            return self._failed(incoming, decision, {"step": step, "error": type(error).__name__, "cause": str(error)})
        if decision.decide(SUCCEEDED_STEP) != SUCCEEDED_STEP:
            return {"step": step, "outcome": "ignored: the step was declared failed; its cancel releases this"}
        self.bus().emit(reserved_event(self.spec), incoming.answer(step, result=result))
        return {"step": step, "outcome": SUCCEEDED_STEP, "result": result}

    def _failed(self, incoming: SagaEvent, decision: Decision, failure: dict[str, Any]) -> dict[str, Any]:
        if decision.decide(FAILED_STEP) != FAILED_STEP:
            return {"step": failure["step"], "outcome": "ignored: a delivery of the step succeeded already"}
        self.bus().emit(failed_event(self.spec), incoming.answer(failure["step"], failure=failure))
        return {"step": failure["step"], "outcome": FAILED_STEP, "failure": failure}

    def cancel(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        """On a failure or the next service's cancellation: cancel for the saga and emit ``<Service>Cancelled``. On
        Lambda's record of its own reserve's crash: declare the step failed. Invoked directly with the state
        machine's payload (``saga replay``): just cancel, and answer."""
        if event.get("detail-type") == FAILURE_RECORD:
            return self._reserve_crashed(event["detail"])
        if "detail" not in event:
            return self.service.handle_cancel(event, context)
        incoming = SagaEvent.from_json(event["detail"])
        step = self.spec.cancel_state
        payload = {"step": step, "execution": incoming.saga_id, "booking": incoming.booking}
        result = retrying(lambda: self.service.handle_cancel(payload, context), self.retries)
        self.bus().emit(cancelled_event(self.spec), incoming.answer(step, result=result))
        return {"step": step, "outcome": "cancelled", "result": result}

    def _reserve_crashed(self, record: dict[str, Any]) -> dict[str, Any]:
        """The reserve's invocation failed without answering (a timeout, a crash): unless another delivery of it
        succeeded, the step failed with the error Lambda reported."""
        incoming = SagaEvent.from_json(record["requestPayload"]["detail"])
        response = record.get("responsePayload") or {}
        failure = {
            "step": self.spec.reserve_state,
            "error": str(response.get("errorType") or "Lambda.Unknown"),
            "cause": str(response.get("errorMessage") or ""),
        }
        return self._failed(incoming, Decision(self.service.table(), incoming.saga_id), failure)


# ---------------------------------------------------------------- the bookings service: the saga log


class SagaLog:
    """Every event of every saga, in the saga's order: ``saga#<saga id>`` keyed, sorted by ``<seq>#<event>``."""

    def __init__(self, table: Any):
        self.table = table

    def append(self, detail_type: str, event: SagaEvent, event_id: str) -> bool:
        """Record the event once (a repeated delivery changes nothing); whether this call recorded it."""
        item = {
            "pk": f"saga#{event.saga_id}",
            "sk": f"{event.seq:04d}#{detail_type}",
            "booking_id": event.booking_id,
            "type": detail_type,
            "seq": event.seq,
            "at": event.at or now(),
            "event_id": event_id,
            "detail": json.dumps(event.to_json(), default=str),
        }
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def entries(self, saga_id: str) -> list["Entry"]:
        """The saga's events in its order (a strongly consistent, paginated query)."""
        return [Entry.from_item(item) for item in self._query(saga_id)]

    def _query(self, saga_id: str) -> Iterator[dict[str, Any]]:
        page: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": f"saga#{saga_id}"},
            "ConsistentRead": True,
        }
        while True:
            response = self.table.query(**page)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            page["ExclusiveStartKey"] = response["LastEvaluatedKey"]


@dataclass(frozen=True)
class Entry:
    """One event in the saga log."""

    type: str
    seq: int
    at: str
    event: SagaEvent

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Entry":
        return cls(
            str(item["type"]), int(item["seq"]), str(item["at"]), SagaEvent.from_json(json.loads(item["detail"]))
        )

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.type, "at": self.at, **self.event.to_json()}


def parked_state(
    booking: dict[str, Any], entries: list[Entry], compensation_failure: dict[str, Any], services: tuple[Service, ...]
) -> dict[str, Any]:
    """What the orchestrated design parks for a booking whose cancel failed for good: the booking, what each
    service reserved and what was already undone, the failure and the cancel's failure."""
    reservations, compensations, failure = {}, {}, None
    for entry in entries:
        for service in services:
            if entry.type == reserved_event(service):
                reservations[service.name] = entry.event.result
            elif entry.type == cancelled_event(service):
                compensations[service.name] = entry.event.result
        failure = entry.event.failure or failure
    state = {**booking, "reservations": reservations, "compensations": compensations}
    if failure:
        state["failure"] = {"Error": failure.get("error"), "Cause": failure.get("cause")}
    return state | {"compensation_failure": compensation_failure}


@dataclass
class Bookings:
    """The bookings service's part in the choreography: it records every saga event in the saga log, declares how
    each booking ended (``BookingConfirmed``, ``BookingFailed``), and parks a booking whose cancel failed for good."""

    log: Callable[[], SagaLog]
    bus: Callable[[], Bus]
    services: tuple[Service, ...] = SERVICES

    def record(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        if event.get("detail-type") == FAILURE_RECORD:
            return self._park(event["detail"])
        detail_type = str(event["detail-type"])
        incoming = SagaEvent.from_json(event.get("detail"))
        recorded = self.log().append(detail_type, incoming, str(event.get("id", "")))
        end = ends(self.services).get(detail_type)
        if end is not None:  # again on a repeated delivery: this call may be the retry of one that failed to emit
            self.bus().emit(end, incoming.answer("Bookings"))
        return {"event": detail_type, "seq": incoming.seq, "recorded": recorded, "emitted": end}

    def _park(self, record: dict[str, Any]) -> dict[str, Any]:
        """A cancel that failed all its attempts: the booking is parked with its state, for ``saga replay``."""
        request = record["requestPayload"]
        incoming = SagaEvent.from_json(request["detail"])
        reaction = reaction_to(str(request.get("detail-type")), self.services)
        step = reaction.step if reaction else "unknown"
        response = record.get("responsePayload") or {}
        error = str(response.get("errorType") or "Lambda.Unknown")
        failure = {"Error": error, "Cause": str(response.get("errorMessage") or "")}
        state = parked_state(incoming.booking, self.log().entries(incoming.saga_id), failure, self.services)
        self.bus().emit(PARKED, incoming.answer(step, parked=state))
        return {"event": PARKED, "step": step, "error": error}


def request(bus: Bus, booking: dict[str, Any], saga_id: str) -> SagaEvent:
    """Start a booking's saga (accepted for ``saga_id`` already): ``BookingRequested``, its first event."""
    event = SagaEvent(saga_id=saga_id, seq=1, booking=booking, step="Bookings", at=now())
    bus.emit(REQUESTED, event)
    return event


def status(entries: list[Entry]) -> tuple[str, str | None, str | None]:
    """A saga's status, error and cause from its log, in Step Functions' terms so every design's verdict reads
    alike: ``SUCCEEDED`` once confirmed, ``FAILED`` once failed (with the failed step's error) or parked
    (``CompensationFailed``), else ``RUNNING``."""
    types = {entry.type: entry for entry in entries}
    if CONFIRMED in types:
        return "SUCCEEDED", None, None
    if PARKED in types:
        parked = types[PARKED].event.parked or {}
        cause = (parked.get("compensation_failure") or {}).get("Cause")
        return "FAILED", "CompensationFailed", cause
    if FAILED in types:
        failure = types[FAILED].event.failure or {}
        return "FAILED", failure.get("error"), failure.get("cause")
    return "RUNNING", None, None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
