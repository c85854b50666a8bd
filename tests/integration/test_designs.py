"""The choreographed and atomic designs run from their synthesized templates on the local cloud, with the real
handlers: the orchestrated saga's execution tests (happy path, a failure at each step, a cancel that fails for
good, repeated and transient deliveries, 200 bookings at once), judged from each design's history and the tables,
and by its audit."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from booking_saga.designs import ATOMIC, CHOREOGRAPHY, DESIGNS
from booking_saga.ledger import RESERVED
from booking_saga.services import SERVICES
from saga.designs import DesignDeployment, Ending, find_design
from saga.localcloud import LocalCloud
from tests.factories import booking
from tests.integration.executions import endings_once_idle

WAIT_SCALE = 0.01  # Lambda's and EventBridge's retry waits at 1/100 of real time
# Locally every function runs a few invocations at a time and the rest queue; stretched timeouts keep queueing
# from turning into timeouts, which these tests are not about.
TIMEOUT_SCALE = 20
SEATS, ROOMS = 5, 3


@pytest.fixture(scope="module")
def cloud(assembly):
    with LocalCloud(wait_scale=WAIT_SCALE, timeout_scale=TIMEOUT_SCALE) as cloud:
        for design in (CHOREOGRAPHY, ATOMIC):
            cloud.deploy(assembly.directory, DESIGNS[design].stack)
        yield cloud


@pytest.fixture(scope="module", params=[CHOREOGRAPHY, ATOMIC])
def design(request, cloud) -> DesignDeployment:
    return find_design(request.param, endpoint_url=cloud.endpoint_url)


_counter = iter(range(10**6))


def trip(design: DesignDeployment, **overrides) -> dict:
    """A reference trip on a flight and hotel of its own (SEATS seats, ROOMS rooms), with a fresh booking id."""
    n = next(_counter)
    flight, hotel = f"FL-{n}", f"HT-{n}"
    design.ledger("flight").stock(flight, SEATS)
    design.ledger("hotel").stock(hotel, ROOMS)
    document = booking(f"{design.design[:4]}-{n:05d}", flight={"flight_id": flight, "seats": 2})
    return document | {"hotel": {"hotel_id": hotel, "rooms": 1}} | overrides


def settled(cloud: LocalCloud, design: DesignDeployment, booking_id: str) -> Ending:
    return endings_once_idle(cloud, design, [booking_id])[0]


def held(design: DesignDeployment, document: dict) -> dict[str, object]:
    """What the booking holds in each service's table, and what is left of its flight and hotel."""
    found: dict[str, object] = {
        service.name: (design.ledger(service.name).record(document["booking_id"]) or {}).get("status")
        for service in SERVICES
    }
    found["seats left"] = design.ledger("flight").available(document["flight"]["flight_id"])
    found["rooms left"] = design.ledger("hotel").available(document["hotel"]["hotel_id"])
    return found


def events(design: DesignDeployment, booking_id: str) -> list[str]:
    return [entry["event"] for entry in design.history(booking_id)]


def test_a_booking_is_confirmed_and_holds_seat_room_and_charge(cloud, design):
    document = trip(design)

    design.book(document)

    assert settled(cloud, design, document["booking_id"]).verdict == "confirmed"
    assert held(design, document) == {
        "flight": RESERVED,
        "hotel": RESERVED,
        "payment": RESERVED,
        "seats left": SEATS - 2,
        "rooms left": ROOMS - 1,
    }
    if design.design == CHOREOGRAPHY:
        assert events(design, document["booking_id"]) == [
            "BookingRequested",
            "FlightReserved",
            "HotelReserved",
            "PaymentProcessed",
            "BookingConfirmed",
        ]
    else:
        assert design.history(document["booking_id"])[0]["outcome"] == "CONFIRMED"
    assert design.audit().clean


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_a_failure_at_each_step_leaves_nothing_held(cloud, design, service):
    document = trip(design, chaos={"fail_at": service.name})

    design.book(document)

    ending = settled(cloud, design, document["booking_id"])
    assert (ending.error, ending.verdict) == (
        "ChaosFailure",
        "compensated" if design.design == CHOREOGRAPHY else "rolled back",
    )
    assert RESERVED not in held(design, document).values()
    assert (held(design, document)["seats left"], held(design, document)["rooms left"]) == (SEATS, ROOMS)
    if design.design == CHOREOGRAPHY:
        reached = SERVICES.index(service)
        assert events(design, document["booking_id"]) == [
            "BookingRequested",
            *(
                f"{earlier.name.capitalize()}{'Processed' if earlier.name == 'payment' else 'Reserved'}"
                for earlier in SERVICES[:reached]
            ),
            f"{service.reserve_state}Failed",
            *(f"{earlier.name.capitalize()}Cancelled" for earlier in reversed(SERVICES[: reached + 1])),
            "BookingFailed",
        ]
    assert design.audit().clean


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"flight": {"flight_id": "NO-SUCH", "seats": 1}}, "SoldOut"),
        ({"payment": {"amount": 10_000_000, "currency": "JPY"}}, "PaymentDeclined"),
    ],
    ids=["sold-out", "declined"],
)
def test_the_sagas_errors_are_each_designs_errors(cloud, design, overrides, error):
    document = trip(design) | overrides

    design.book(document)

    assert settled(cloud, design, document["booking_id"]).error == error
    assert design.audit().clean


def test_repeated_and_transient_deliveries_take_capacity_once(cloud, design):
    chaos = {"duplicate": ["flight.reserve", "hotel.reserve"], "transient": {"hotel.reserve": 2, "payment.reserve": 1}}
    document = trip(design, chaos=chaos)

    design.book(document)
    design.book(document)  # the same booking again starts nothing

    assert settled(cloud, design, document["booking_id"]).verdict == "confirmed"
    assert held(design, document)["seats left"] == SEATS - 2
    assert held(design, document)["rooms left"] == ROOMS - 1
    assert design.audit().clean


def test_a_cancel_that_fails_for_good_parks_the_booking_with_its_state(cloud):
    """The atomic design has no cancel to fail: its transaction writes all or nothing."""
    design = find_design(CHOREOGRAPHY, endpoint_url=cloud.endpoint_url)
    document = trip(design, chaos={"fail_at": "payment", "fail_cancel": "hotel"})

    design.book(document)

    ending = settled(cloud, design, document["booking_id"])
    assert (ending.error, ending.verdict) == ("CompensationFailed", "parked")
    assert events(design, document["booking_id"])[-2:] == ["PaymentCancelled", "CompensationFailed"]
    assert held(design, document) | {"seats left": None, "rooms left": None} == {
        "flight": RESERVED,
        "hotel": RESERVED,
        "payment": "CANCELLED",
        "seats left": None,
        "rooms left": None,
    }
    queue = design.client("sqs")
    [message] = queue.receive_message(QueueUrl=design.outputs["DeadLetterQueueUrl"], WaitTimeSeconds=5)["Messages"]
    parked = json.loads(message["Body"])
    assert parked["booking_id"] == document["booking_id"]
    assert set(parked["reservations"]) == {"flight", "hotel"}
    assert parked["compensation_failure"]["Error"] == "ChaosFailure"
    report = design.audit()
    assert report.clean
    assert sorted(report.parked) == [f"flight {document['booking_id']}", f"hotel {document['booking_id']}"]


BOOKINGS, RUSH_SEATS, RUSH_ROOMS = 200, 50, 30


def test_200_bookings_at_once_sell_exactly_the_capacity_and_losers_hold_nothing(cloud, design, figures):
    design.ledger("flight").stock(f"RUSH-{design.design}", RUSH_SEATS)
    design.ledger("hotel").stock(f"INN-{design.design}", RUSH_ROOMS)
    documents = [
        booking(
            f"rush-{design.design[:4]}-{n:04d}",
            flight={"flight_id": f"RUSH-{design.design}", "seats": 1},
            hotel={"hotel_id": f"INN-{design.design}", "rooms": 1},
        )
        for n in range(BOOKINGS)
    ]

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(design.book, documents))
    endings = endings_once_idle(cloud, design, [document["booking_id"] for document in documents], timeout=900)

    verdicts = [ending.verdict for ending in endings]
    figures[f"contention ({design.design}): confirmed of {BOOKINGS}"] += verdicts.count("confirmed")
    assert verdicts.count("confirmed") == RUSH_ROOMS  # the hotel is the bottleneck: every room sold, no more
    assert {ending.error for ending in endings if ending.verdict != "confirmed"} == {"SoldOut"}
    assert design.ledger("hotel").available(f"INN-{design.design}") == 0
    assert design.ledger("flight").available(f"RUSH-{design.design}") == RUSH_SEATS - RUSH_ROOMS
    report = design.audit()
    assert report.clean, report.drift
