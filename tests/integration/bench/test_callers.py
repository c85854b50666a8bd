"""The benchmark's callers report what went wrong in their process, and stop the benchmark with it."""

import pytest

from bench.callers import callers


def test_a_caller_reports_a_booking_before_a_deployment_and_a_deployment_it_cannot_reach():
    with callers(1) as (caller,):
        with pytest.raises(RuntimeError, match="no deployment to start bookings on"):
            caller.start({"booking_id": "early"})
        with pytest.raises(RuntimeError, match="a benchmark caller failed: EndpointConnectionError"):
            caller.use("BookingSaga", "http://127.0.0.1:9", "http://127.0.0.1:9")
