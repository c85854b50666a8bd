"""The fault schedules of test_reliability (``fault_schedules``: drawn by hypothesis the same way, with the same model
of the saga) on both engines: a sample of them, each booked once on moto's interpreter and once on the second engine,
with its own booking id, flight and hotel, and the two compared (``comparison``)."""

import itertools

from hypothesis import HealthCheck, given, settings

from tests.integration import fault_schedules
from tests.integration.engines.comparison import assert_engines_agree, run_both, sides, stock_and_describe, views
from tests.integration.fault_schedules import Scenario, expected, scenarios

TIMEOUT_SCALE = fault_schedules.TIMEOUT_SCALE  # the module's local cloud and the second engine run at it
SCHEDULES = 25
_numbers = itertools.count(1)


def test_both_engines_end_every_fault_schedule_alike(deployment, second_engine):
    @settings(max_examples=SCHEDULES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenario=scenarios(uncatchable=False))  # the second engine's executions are not reconciled
    def run(scenario: Scenario) -> None:
        moto, second = sides(f"schedule-{next(_numbers)}")
        for side in (moto, second):
            stock_and_describe(deployment, side, scenario)

        outcomes = run_both(deployment, second_engine, moto, second)

        assert [outcome.verdict for outcome in outcomes] == [expected(scenario).verdict] * 2
        assert_engines_agree(*views(deployment, outcomes, moto, second))

    run()
