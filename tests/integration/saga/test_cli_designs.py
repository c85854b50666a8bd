"""`saga ... --design choreography|atomic` on the local cloud: book, status, history, list, chaos and audit, each
read back from the design's own records."""

import json

import pytest

from booking_saga.designs import ATOMIC, CHOREOGRAPHY, DESIGNS
from saga.catalog import SAMPLE_CATALOG, load_catalog
from saga.designs import find_design, stock
from saga.localcloud import LocalCloud

WAIT_SCALE = 0.01


@pytest.fixture(scope="module")
def cloud(assembly):
    with LocalCloud(wait_scale=WAIT_SCALE, timeout_scale=5) as cloud:
        for design in (CHOREOGRAPHY, ATOMIC):
            cloud.deploy(assembly.directory, DESIGNS[design].stack)
            stock(find_design(design, endpoint_url=cloud.endpoint_url), load_catalog(SAMPLE_CATALOG))
        yield cloud


@pytest.fixture
def saga(saga_on_cloud):
    """The command on this module's cloud, which has the designs' stacks and not the orchestrated one."""
    return saga_on_cloud


@pytest.mark.parametrize("design", [CHOREOGRAPHY, ATOMIC])
def test_book_wait_status_history_list_and_audit(saga, design):
    booking_id = f"cli-{design}"

    code, out, _ = saga("book", "--design", design, "--booking-id", booking_id, "--wait", "--json")
    assert code == 0, out
    assert json.loads(out)["verdict"] == "confirmed"

    code, out, _ = saga("status", "--design", design, booking_id, "--json")
    assert (code, json.loads(out)["verdict"], json.loads(out)["design"]) == (0, "confirmed", design)

    code, out, _ = saga("history", "--design", design, booking_id, "--json")
    history = json.loads(out)["history"]
    if design == CHOREOGRAPHY:
        assert [entry["event"] for entry in history][-1] == "BookingConfirmed"
    else:
        assert history[0]["outcome"] == "CONFIRMED"

    code, out, _ = saga("list", "--design", design, "--json")
    assert booking_id in {entry["booking_id"] for entry in json.loads(out)}

    code, out, _ = saga("audit", "--design", design, "--json")
    assert (code, json.loads(out)["clean"]) == (0, True)


@pytest.mark.parametrize("design", [CHOREOGRAPHY, ATOMIC])
@pytest.mark.parametrize("fail_at", ["flight", "hotel", "payment"])
def test_chaos_passes_at_every_step(saga, design, fail_at):
    code, out, _ = saga("chaos", "--design", design, "--fail-at", fail_at, "--json")

    report = json.loads(out)
    assert (code, report["passed"]) == (0, True), report
    names = [check["check"] for check in report["checks"]]
    assert ("the cancels ran in reverse order" in names) == (design == CHOREOGRAPHY)


def test_a_failed_booking_exits_1_and_says_why(saga):
    code, out, _ = saga("book", "--design", ATOMIC, "--booking-id", "cli-declined", "--amount", "99999999", "--wait")

    assert code == 1
    assert "PaymentDeclined" in out


def test_what_only_the_orchestrated_design_has_is_refused_in_one_line(saga):
    code, _, err = saga("book", "--design", CHOREOGRAPHY, "--api")

    assert code == 2
    assert err.strip().endswith("the choreography design has neither")


def test_graph_draws_the_choreographys_event_flow_with_a_bookings_events(saga):
    saga("book", "--design", CHOREOGRAPHY, "--booking-id", "cli-graph", "--fail-at", "hotel", "--wait")

    code, out, _ = saga("graph", "--design", CHOREOGRAPHY, "cli-graph")

    assert code == 0
    assert out.startswith("flowchart TD")
    events = "BookingRequested,FlightReserved,ReserveHotelFailed,HotelCancelled,FlightCancelled,BookingFailed"
    assert out.splitlines()[-1] == f"    class {events} failed"


def test_replay_finishes_a_parked_choreographed_booking(saga, cloud):
    code, out, _ = saga(
        "book", "--design", CHOREOGRAPHY, "--booking-id", "cli-parked", "--fail-at", "payment",
        "--fail-cancel", "hotel", "--wait", "--json",
    )  # fmt: skip
    assert (code, json.loads(out)["verdict"]) == (1, "parked")

    code, out, _ = saga("replay", "--design", CHOREOGRAPHY, "--json")

    assert code == 0
    [replayed] = json.loads(out)
    assert (replayed["booking_id"], replayed["finished"]) == ("cli-parked", True)
    assert [cancel["step"] for cancel in replayed["cancels"]] == ["RefundPayment", "CancelHotel", "CancelFlight"]
    _, out, _ = saga("status", "--design", CHOREOGRAPHY, "cli-parked", "--json")
    assert json.loads(out)["verdict"] == "undone by replay"
    design = find_design(CHOREOGRAPHY, endpoint_url=cloud.endpoint_url)
    held = [
        service
        for service in ("flight", "hotel", "payment")
        if design.ledger(service).record("cli-parked")["status"] != "CANCELLED"
    ]
    assert held == []
    code, out, _ = saga("audit", "--design", CHOREOGRAPHY, "--json")
    assert (code, json.loads(out)["parked"]) == (0, [])
