"""Hostile booking documents, drawn by hypothesis, against the real handlers on moto's DynamoDB.

The contract (README, "The booking (execution input)"): anything that is not a valid booking ends in
``InvalidBooking`` before anything is written, never in another error. Each refused document is sent to the
reserve and the cancel of every service, under the state names the state machine gives them: reserve must raise
exactly ``InvalidBooking``, prefixed with the step and naming the offending field; cancel must answer
``NOTHING_TO_CANCEL`` with the same reason; and no table may change (no record, no chaos counter, no capacity).

Documents are: a valid booking with one certainly invalid change (invalid by construction, not by an oracle that
re-implements the validator), the same change among garbage in every other field, non-objects, hand-picked
boundary and lookalike values (all sent every run), and arbitrary JSON-like values, which may be valid and must
then end in a result or a business error, never a crash. One test changes a single field to a value that is valid
or invalid by construction, and checks that the booking is refused exactly when the value is invalid.

The conftest fixtures are function-scoped, so one set of tables serves all of a test's examples: each example
snapshots the tables before and after, documents built from the valid base get a booking id no other example
uses, and a valid booking that was reserved is cancelled and its records dropped before the next example.
"""

import itertools
import json

import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from booking_saga.contract import (
    MAX_BOOKING_BYTES,
    BusinessError,
    InvalidBooking,
    PaymentDeclined,
    SoldOut,
    readable_name,
)
from tests.factories import booking
from tests.lambdas.support import CONTRACT, TABLES
from tests.strategies import (
    ANYTHING,
    CENTS,
    CHAOS_EDGES,
    CHAOS_INVALID,
    CHAOS_VALID,
    EDGES,
    GARBAGE_OBJECTS,
    HOSTILE_STRINGS,
    ID_CHARS,
    INVALID,
    INVALID_MUTATIONS,
    KNOWN_CHAOS,
    LEAVES,
    NON_OBJECT_DOCUMENTS,
    NON_OBJECT_EDGES,
    REQUIRED_PATHS,
    SECTIONS,
    STEP_KEYS,
    STOCKED,
    TOP_LEVEL_KNOWN,
    VALID,
    Mutation,
    examples,
    missing,
    unknown_key_samples,
)

# The state names the stack gives each service's reserve and cancel (stacks/booking_saga.py, SERVICES).
STEPS = {
    "flight": ("ReserveFlight", "CancelFlight"),
    "hotel": ("ReserveHotel", "CancelHotel"),
    "payment": ("ProcessPayment", "RefundPayment"),
}
# Plenty, so that valid documents never sell out and the capacity checks compare exact numbers.
MAX_REASON = 256  # a refusal names the field; it never echoes a 100 kB value back into the execution history


def _leaf_edges(*kinds: str) -> list[Mutation]:
    return [
        Mutation(path, value, names=(".".join(path),))
        for path, kind in LEAVES.items()
        if kind in kinds
        for value in EDGES[kind]
    ]


# The hand-picked cases, by group: every one is sent every run.
EDGE_MUTATIONS = {
    "ids": _leaf_edges("id"),
    "numbers and currency": _leaf_edges("units", "amount", "currency"),
    "structure": [
        *(missing(path) for path in REQUIRED_PATHS),
        *(
            Mutation(path, value, names=(path[0] if path else "booking",))
            for path in [(), *((section,) for section in SECTIONS), ("chaos",)]
            for value in NON_OBJECT_EDGES
        ),
        *(
            Mutation((*path, key), "x", names=(path[0] if path else "booking", readable_name(key)))
            for path, known in [
                ((), TOP_LEVEL_KNOWN),
                *(((section,), set(fields)) for section, fields in SECTIONS.items()),
                (("chaos",), KNOWN_CHAOS),
            ]
            for key in unknown_key_samples(known)
        ),
    ],
    "chaos": [
        Mutation(("chaos", key), value, names=(f"chaos.{key}",))
        for key in (*STEP_KEYS, "transient", "duplicate")
        for value in CHAOS_EDGES["step" if key in STEP_KEYS else key]
    ],
}

HYPOTHESIS = {
    "deadline": None,
    # the tables live as long as the test function, not one example: each example snapshots them itself
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
_unique_ids = (f"hostile-{n}" for n in itertools.count())
_python = TypeDeserializer()


@pytest.fixture
def catalog(stock) -> None:
    for service, (resource_id, available) in STOCKED.items():
        stock(service, resource_id, available)


def snapshot(dynamodb) -> dict[str, dict[str, dict]]:
    """Every item of every table as Python values, read straight from moto's DynamoDB: the suite takes thousands
    of snapshots, and scanning through the API cost more than the rest of the test."""
    tables = dynamodb_backends[DEFAULT_ACCOUNT_ID][dynamodb.meta.client.meta.region_name].tables
    return {
        service: {
            item["pk"]: item
            for item in (
                {name: _python.deserialize(value) for name, value in stored.to_json()["Attributes"].items()}
                for stored in tables[table].items.values()
            )
        }
        for service, table in TABLES.items()
    }


def assert_refused_without_a_trace(dynamodb, invoke, document: object, names: tuple[str, ...] = ()) -> None:
    """Every reserve raises InvalidBooking (step-prefixed, naming ``names``), every cancel has nothing to do,
    and not one item of any table changed: no record, no tombstone, no chaos counter, no capacity taken.

    Compared with the tables as they were, not as stocked: after one wrong acceptance, later examples (and
    hypothesis' shrinking) still judge their own document, not the leftovers. A document over the size limit
    is refused for its size, before any field is read."""
    if _size(document) > MAX_BOOKING_BYTES:
        names = (f"at most {MAX_BOOKING_BYTES} bytes",)
    before = snapshot(dynamodb)
    for service, (reserve_step, cancel_step) in STEPS.items():
        with pytest.raises(InvalidBooking) as refused:
            invoke(service, "reserve", document, reserve_step)
        assert type(refused.value) is InvalidBooking
        message = str(refused.value)
        assert message.startswith(f"{reserve_step}: "), message
        reason = message.removeprefix(f"{reserve_step}: ")
        assert len(reason) <= MAX_REASON, reason
        assert reason.isprintable(), f"{reason!r} would put control characters into logs and answers"
        for name in names:
            assert name in reason, f"{reason!r} does not name {name!r}"

        cancelled = invoke(service, "cancel", document, cancel_step)
        assert cancelled == {"service": service, "status": "NOTHING_TO_CANCEL", "released": False, "reason": reason}

    assert snapshot(dynamodb) == before


def _size(document: object) -> int:
    try:
        return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError):
        return 0


def inventory(tables: dict[str, dict[str, dict]]) -> dict[str, int]:
    return {pk: item["available"] for items in tables.values() for pk, item in items.items() if "available" in item}


def _forget(dynamodb, booking_id: str, before: dict[str, dict[str, dict]]) -> None:
    """After a valid booking was reserved and cancelled: its capacity is back; drop its records."""
    assert inventory(snapshot(dynamodb)) == inventory(before)
    for table in TABLES.values():
        dynamodb.Table(table).delete_item(Key={"pk": f"booking#{booking_id}"})


def test_the_valid_base_booking_is_reserved_and_cancelled_by_every_service(dynamodb, catalog, invoke):
    """The control: the base every mutation starts from passes, and the snapshots do see writes."""
    document = booking("control-0001")
    before = snapshot(dynamodb)

    for service, (reserve_step, _) in STEPS.items():
        assert invoke(service, "reserve", document, reserve_step)["status"] == "RESERVED"
    reserved = snapshot(dynamodb)
    for service, (_, cancel_step) in STEPS.items():
        assert invoke(service, "cancel", document, cancel_step)["released"] is True

    assert reserved != before
    assert all(items["booking#control-0001"]["status"] == "RESERVED" for items in reserved.values())
    assert reserved["flight"]["inventory#NH101"]["available"] == STOCKED["flight"][1] - 2
    assert reserved["hotel"]["inventory#TOKYO-GRAND"]["available"] == STOCKED["hotel"][1] - 1
    assert snapshot(dynamodb)["flight"]["inventory#NH101"]["available"] == STOCKED["flight"][1]


def test_the_hostile_samples_are_outside_the_id_alphabet():
    """Keeps the hand-written samples honest: each one breaks the documented id rule."""
    for sample in HOSTILE_STRINGS:
        assert sample == "" or set(sample) - set(ID_CHARS), repr(sample)


@pytest.mark.parametrize("group", EDGE_MUTATIONS)
def test_every_hand_picked_hostile_value_is_refused(dynamodb, catalog, invoke, group):
    failures = []
    for mutation in EDGE_MUTATIONS[group]:
        try:
            assert_refused_without_a_trace(dynamodb, invoke, mutation.apply(booking(next(_unique_ids))), mutation.names)
        except (Exception, pytest.fail.Exception) as error:  # a wrong error type fails too; report every case
            failures.append(f"{mutation!r:.160}\n    {type(error).__name__}: {str(error)[:300]}")
    assert not failures, f"{len(failures)} of {len(EDGE_MUTATIONS[group])} refused wrongly:\n" + "\n".join(failures)


@settings(max_examples=examples(200), **HYPOTHESIS)
@given(mutation=INVALID_MUTATIONS)
def test_a_valid_booking_with_one_hostile_change_is_refused_naming_it(dynamodb, catalog, invoke, mutation):
    document = mutation.apply(booking(next(_unique_ids)))

    assert_refused_without_a_trace(dynamodb, invoke, document, mutation.names)


@settings(max_examples=examples(150), **HYPOTHESIS)
@given(garbage=GARBAGE_OBJECTS, mutation=INVALID_MUTATIONS)
def test_a_hostile_change_among_garbage_is_still_refused(dynamodb, catalog, invoke, garbage, mutation):
    assert_refused_without_a_trace(dynamodb, invoke, mutation.apply(garbage))


@settings(max_examples=examples(100), **HYPOTHESIS)
@given(document=NON_OBJECT_DOCUMENTS)
def test_a_document_that_is_not_an_object_is_refused(dynamodb, catalog, invoke, document):
    assert_refused_without_a_trace(dynamodb, invoke, document, ("booking must be an object",))


@settings(max_examples=examples(150), **HYPOTHESIS)
@given(document=ANYTHING)
def test_any_document_ends_in_a_result_or_a_business_error_never_a_crash(
    dynamodb, chaos_off, catalog, invoke, document
):
    # where chaos is off a chaos section is refused, so none can force a failure or a wait
    before = snapshot(dynamodb)
    outcomes = {}
    for service, (reserve_step, _) in STEPS.items():
        try:
            outcomes[service] = invoke(service, "reserve", document, reserve_step)["status"]
        except BusinessError as error:  # anything else fails the test
            assert str(error).startswith(f"{reserve_step}: "), error
            outcomes[service] = type(error).__name__
    event(" ".join(sorted(set(outcomes.values()))))

    cancelled = {
        service: invoke(service, "cancel", document, cancel_step) for service, (_, cancel_step) in STEPS.items()
    }
    if "InvalidBooking" in outcomes.values():
        # the document is the same for every service, so is the verdict
        assert set(outcomes.values()) == {"InvalidBooking"}, outcomes
        assert {cancel["status"] for cancel in cancelled.values()} == {"NOTHING_TO_CANCEL"}
        assert snapshot(dynamodb) == before
    else:
        # reserved, sold out or declined: cancelled either way
        assert {cancel["status"] for cancel in cancelled.values()} == {"CANCELLED"}, cancelled
        _forget(dynamodb, document["booking_id"], before)


SINGLE_FIELDS = {
    **{path: (VALID[kind], INVALID[kind]) for path, kind in LEAVES.items()},
    ("payment", "amount"): (VALID["amount"], INVALID["amount"] | CENTS),  # the base booking pays in yen
    **{("chaos", key): (CHAOS_VALID[key], CHAOS_INVALID[key]) for key in CHAOS_VALID},
}


@pytest.mark.parametrize("path", SINGLE_FIELDS, ids=".".join)
@settings(max_examples=examples(20), **HYPOTHESIS)
@given(data=st.data())
def test_one_field_changed_is_refused_if_and_only_if_the_new_value_is_invalid(dynamodb, catalog, invoke, path, data):
    valid, invalid = SINGLE_FIELDS[path]
    is_valid = data.draw(st.booleans(), label="valid")
    value = data.draw(valid if is_valid else invalid, label="value")
    document = Mutation(path, value).apply(booking(next(_unique_ids)))
    event("valid value" if is_valid else "invalid value")

    if not is_valid:
        assert_refused_without_a_trace(dynamodb, invoke, document, (".".join(path),))
        return
    if path[0] == "chaos":  # accepted, and not acted on here: a valid chaos value forces failures and waits
        CONTRACT.parse(document)
        return
    before = snapshot(dynamodb)
    for service, (reserve_step, cancel_step) in STEPS.items():
        try:
            result = invoke(service, "reserve", document, reserve_step)
            assert result["status"] == "RESERVED"
        except (SoldOut, PaymentDeclined):
            pass  # accepted, then refused by the business: an unknown flight or hotel, an amount above the limit
        assert invoke(service, "cancel", document, cancel_step)["status"] == "CANCELLED"
    _forget(dynamodb, document["booking_id"], before)


def test_an_amount_with_more_digits_than_python_prints_is_refused(dynamodb, catalog, invoke):
    """str() refuses ints of over 4300 digits; the validator must refuse them before it prints one."""
    assert_refused_without_a_trace(dynamodb, invoke, booking(payment={"amount": 10**4300, "currency": "JPY"}))


def test_an_unknown_field_name_is_quoted_with_its_control_characters_escaped(dynamodb, catalog, invoke):
    with pytest.raises(InvalidBooking) as refused:
        invoke("flight", "reserve", booking() | {"pk\x00\n\u2028é": 1}, "ReserveFlight")

    assert str(refused.value) == "ReserveFlight: booking has unknown field(s) pk\\x00\\n\\u2028é"
