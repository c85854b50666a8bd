"""Every execution scenario the suite runs (test_executions, test_booking_ids), on both engines: moto's interpreter
and the second engine (aws-local-stepfunctions) must end each alike, enter the same states with the same attempts,
and leave the same tables and dead-letter queue (``comparison``; KNOWN_DIFFERENCES.md lists where they may not)."""

from dataclasses import replace

import pytest

from tests.integration.engines.comparison import (
    Disagreement,
    KnownDifference,
    assert_engines_agree,
    known_differences,
    run_both,
    sides,
    stock_and_describe,
    views,
)
from tests.integration.fault_schedules import PAYMENT_LIMIT, Scenario, expected

PLAIN = Scenario(seats=2, rooms=1, flight_capacity=10, hotel_capacity=10, amount=84_000, malformed=False)
SCENARIOS = {
    "confirmed": PLAIN,
    "sold-out-flight": replace(PLAIN, seats=3, flight_capacity=2),
    "sold-out-hotel": replace(PLAIN, rooms=7, hotel_capacity=6),
    "declined": replace(PLAIN, amount=PAYMENT_LIMIT + 1),
    "chaos-flight": replace(PLAIN, chaos={"fail_at": "flight"}),
    "chaos-hotel": replace(PLAIN, chaos={"fail_at": "hotel"}),
    "chaos-payment": replace(PLAIN, chaos={"fail_at": "payment"}),
    "parked": replace(PLAIN, chaos={"fail_at": "payment", "fail_cancel": "hotel"}),
    "malformed": replace(PLAIN, malformed=True),
}


@pytest.mark.parametrize("label", SCENARIOS)
def test_both_engines_run_each_scenario_alike(deployment, second_engine, label):
    scenario = SCENARIOS[label]
    moto, second = sides(label)
    for side in (moto, second):
        stock_and_describe(deployment, side, scenario)

    outcomes = run_both(deployment, second_engine, moto, second)

    assert [outcome.verdict for outcome in outcomes] == [expected(scenario).verdict] * 2
    on_moto, on_second = views(deployment, outcomes, moto, second)
    if expected(scenario).verdict == "parked":
        assert (len(on_moto["dead letters"]), len(on_second["dead letters"])) == (1, 1)
    assert_engines_agree(on_moto, on_second)


def test_both_engines_refuse_a_second_execution_with_a_booking_id_in_use(deployment, second_engine):
    moto, second = sides("in-use")
    for side in (moto, second):
        stock_and_describe(deployment, side, PLAIN)
    first = run_both(deployment, second_engine, moto, second)
    assert [outcome.verdict for outcome in first] == ["confirmed"] * 2
    for side, outcome in zip((moto, second), first, strict=True):
        side.placeholders[outcome.execution_arn] = "<first execution>"
        side.document |= {"chaos": {"fail_at": "hotel"}}  # the same details: chaos is not one

    outcomes = run_both(deployment, second_engine, moto, second, name="again")

    assert [outcome.error for outcome in outcomes] == ["BookingConflict"] * 2
    assert_engines_agree(*views(deployment, outcomes, moto, second))


def test_a_known_difference_names_both_values_and_the_aws_documentation_that_settles_it():
    documented = """
## Disagreements

### Invoke refused

- compared: error
- moto: `"Exception"`
- second engine: `"Lambda.ResourceNotFoundException"`
- right: second engine
- AWS documentation: <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>

Why it matters.

## Not compared
"""
    assert known_differences(documented) == [
        KnownDifference(
            "Invoke refused",
            Disagreement("error", '"Exception"', '"Lambda.ResourceNotFoundException"'),
            "second engine",
            "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html",
        )
    ]
    with pytest.raises(AssertionError, match="not AWS's documentation"):
        known_differences(documented.replace("https://docs.aws.amazon.com", "https://example.com"))
    known_differences()  # the file itself: every entry well-formed
