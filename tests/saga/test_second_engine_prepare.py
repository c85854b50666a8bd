"""What the second engine changes in the synthesized definition before it runs it (``prepare``), and nothing else:
each change is one of KNOWN_DIFFERENCES.md's, made mechanically."""

import copy
import json

import pytest

from saga.localcloud.second_engine import SecondEngineUnavailable, prepare
from tests.stacks.definition import resolved_definition


@pytest.fixture(scope="module")
def definition(assembly) -> dict:
    return resolved_definition(assembly.template)


def test_each_state_gets_its_own_name_where_its_parameters_ask_for_the_state_name(definition):
    prepared, _ = prepare(definition)

    asking = [name for name, state in definition["States"].items() if "step.$" in state.get("Parameters", {})]
    assert len(asking) == 6  # every reserve and cancel
    for name in asking:
        parameters = prepared["States"][name]["Parameters"]
        assert (parameters["step"], "step.$" in parameters) == (name, False)
    assert "$$.State.Name" not in json.dumps(prepared)


def test_a_fail_state_with_an_intrinsic_cause_becomes_a_pass_that_computes_it_and_a_fail_that_reads_it(definition):
    prepared, added = prepare(definition)

    assert added == {"CompensationFailed:Fail": "CompensationFailed", "ParkFailed:Fail": "ParkFailed"}
    original = definition["States"]["CompensationFailed"]
    assert prepared["States"]["CompensationFailed"] == {
        "Type": "Pass",
        "Parameters": {"Error": original["Error"], "Cause.$": original["CausePath"]},
        "ResultPath": "$.second_engine_fail",
        "Next": "CompensationFailed:Fail",
    }
    assert prepared["States"]["CompensationFailed:Fail"] == {
        "Type": "Fail",
        "ErrorPath": "$.second_engine_fail.Error",
        "CausePath": "$.second_engine_fail.Cause",
    }
    assert prepared["States"]["BookingFailed"] == definition["States"]["BookingFailed"]  # plain paths: as they were


def test_retry_waits_and_task_timeouts_are_scaled_as_the_local_cloud_scales_them(definition):
    unchanged = copy.deepcopy(definition)

    prepared, _ = prepare(definition, wait_scale=0.01, timeout_scale=0.6)

    reserve, park = prepared["States"]["ReserveFlight"], prepared["States"]["SendToDeadLetterQueue"]
    retrier = definition["States"]["ReserveFlight"]["Retry"][0]
    assert reserve["Retry"][0]["IntervalSeconds"] == pytest.approx(retrier["IntervalSeconds"] * 0.01)
    assert reserve["Retry"][0]["MaxDelaySeconds"] == pytest.approx(retrier["MaxDelaySeconds"] * 0.01)
    assert "IntervalSeconds" not in definition["States"]["SendToDeadLetterQueue"]["Retry"][0]
    assert park["Retry"][0]["IntervalSeconds"] == pytest.approx(0.01)  # ASL's default of 1 s, scaled
    assert reserve["TimeoutSeconds"] == pytest.approx(definition["States"]["ReserveFlight"]["TimeoutSeconds"] * 0.6)
    assert definition == unchanged


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        ({"Type": "Map", "ItemProcessor": {}, "End": True}, "the second engine cannot run Odd: in a Map state's"),
        (
            {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True},
            "the second engine cannot run Odd: it answers no Task of arn:aws:states:::dynamodb:putItem",
        ),
    ],
)
def test_what_the_second_engine_cannot_run_like_step_functions_is_refused_by_name(definition, state, refusal):
    odd = {**definition, "States": {**definition["States"], "Odd": state}}

    with pytest.raises(SecondEngineUnavailable, match=refusal.replace("$", r"\$")):
        prepare(odd)
