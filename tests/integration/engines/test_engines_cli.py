"""`saga book --engine alsf --wait` on the local cloud: the booking runs on the second engine and `saga` shows its path
as it shows one from Step Functions."""

import json


def test_a_booking_on_the_second_engine_is_confirmed_and_shown_step_by_step(saga):
    code, out, _ = saga("book", "--engine", "alsf", "--wait", "--booking-id", "alsf-cli-0001")

    assert code == 0, out
    steps = [line.split()[1] for line in out.splitlines() if line.strip().startswith("✓")]
    assert steps == ["ReserveFlight", "ReserveHotel", "ProcessPayment", "BookingConfirmed"]
    assert "=> CONFIRMED" in out
    assert "not a Step Functions execution" in out


def test_a_failure_on_the_second_engine_shows_the_compensations_and_exits_1(saga):
    code, out, _ = saga("book", "--engine", "alsf", "--wait", "--fail-at", "payment", "--json")

    assert code == 1
    outcome = json.loads(out)
    assert (outcome["verdict"], outcome["failed_step"]) == ("compensated", "ProcessPayment")
    assert outcome["compensations"] == ["RefundPayment", "CancelHotel", "CancelFlight"]
    assert "/alsf:" in outcome["execution_arn"]
