"""`saga audit` against the local cloud: clean after real bookings, and every kind of drift, injected into the
tables behind the saga's back, reported by name with exit 1."""

import json

import pytest

from saga.audit import audit
from saga.bookings import start_booking, wait_for
from saga.cli import main
from tests.factories import booking


@pytest.fixture(scope="module")
def booked(deployment) -> dict[str, str]:
    """One confirmed and one compensated booking on the audit's own flight and hotel."""
    ledger = {service: deployment.ledger(service) for service in ("flight", "hotel")}
    ledger["flight"].stock("AUDIT-1", 10)
    ledger["hotel"].stock("AUDIT-INN", 10)
    trip = {"flight": {"flight_id": "AUDIT-1", "seats": 2}, "hotel": {"hotel_id": "AUDIT-INN", "rooms": 1}}
    start_booking(deployment, booking("audit-ok", **trip))
    start_booking(deployment, booking("audit-undone", **trip, chaos={"fail_at": "payment"}))
    verdicts = {booking_id: wait_for(deployment, booking_id, timeout=60).verdict for booking_id in verdicts_wanted()}
    assert verdicts == verdicts_wanted()
    return verdicts


def verdicts_wanted() -> dict[str, str]:
    return {"audit-ok": "confirmed", "audit-undone": "compensated"}


def run(cloud, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", *args, "--endpoint-url", cloud.endpoint_url])
    return code, capsys.readouterr().out


@pytest.fixture
def tamper(deployment):
    """Change an item behind the saga's back, and put it back afterwards: the module's tables stay honest."""
    saved = []

    def change(service: str, key: str, **attributes) -> None:
        table = deployment.table(service)
        item = table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item")
        saved.append((table, key, item))
        table.put_item(Item={**(item or {"pk": key}), **attributes})

    yield change
    for table, key, item in reversed(saved):
        if item is None:
            table.delete_item(Key={"pk": key})
        else:
            table.put_item(Item=item)


def test_real_bookings_leave_the_tables_clean(deployment, booked, cloud, capsys):
    report = audit(deployment)
    code, out = run(cloud, capsys)

    assert report.clean, report.drift
    assert report.confirmed >= 1
    audit_1 = next(stock for stock in report.stocks if stock.resource_id == "AUDIT-1")
    assert (audit_1.capacity, audit_1.held, audit_1.available) == (10, 2, 8)
    assert code == 0
    assert out.splitlines()[-1] == "Audit CLEAN: every promise holds"


@pytest.mark.parametrize(
    ("service", "key", "change", "check", "detail"),
    [
        ("flight", "inventory#AUDIT-1", {"available": 9}, "inventory", "available 9 + held 2 != capacity 10"),
        ("hotel", "inventory#AUDIT-INN", {"capacity": 12}, "inventory", "available 9 + held 1 != capacity 12"),
        (
            "flight",
            "booking#audit-undone",
            {"status": "RESERVED"},
            "leak",
            "RESERVED by an execution that ended FAILED",
        ),
        ("payment", "booking#audit-ok", {"status": "CANCELLED"}, "confirmed", "confirmed, but its record is CANCELLED"),
        ("hotel", "booking#audit-ok", {"quantity": 3}, "confirmed", "holds other quantity than the booking asked"),
        ("payment", "booking#audit-ok", {"amount": 1}, "confirmed", "holds other amount than the booking asked"),
        ("flight", "booking#audit-ok", {"owner": "someone"}, "confirmed", "its record belongs to another execution"),
        (
            "hotel",
            "booking#audit-stray",
            {"booking_id": "audit-stray", "status": "RESERVED"},
            "leak",
            "by no execution",
        ),
        (
            "flight",
            "booking#audit-ghost",
            {"booking_id": "audit-ghost", "status": "RESERVED", "resource_id": "NOWHERE", "quantity": 1},
            "inventory",
            "1 held of a resource never stocked",
        ),
    ],
)
def test_each_kind_of_drift_is_reported_and_fails_the_audit(
    deployment, booked, cloud, capsys, tamper, service, key, change, check, detail
):
    tamper(service, key, **change)

    report = audit(deployment)
    code, out = run(cloud, capsys, "--json")

    found = [drift for drift in report.drift if drift.service == service and detail in drift.detail]
    assert [drift.check for drift in found] == [check], report.drift
    assert code == 1
    answer = json.loads(out)
    assert answer["clean"] is False
    assert found[0].to_json() in answer["drift"]
