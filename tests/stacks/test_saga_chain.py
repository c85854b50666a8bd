"""The Saga construct on its own: any number of steps, one list entry each, undone in reverse."""

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from aws_cdk.assertions import Template

from stacks.saga_chain import Saga, SagaStep
from tests.stacks.definition import function_logical_id, paths, resolved_definition

FOUR = ("Flight", "Hotel", "Payment", "Car")


def _saga(stack: cdk.Stack, names: tuple[str, ...]) -> Saga:
    function = lambda_.Function(
        stack,
        "Echo",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"),
    )

    def invoke(state: str, result_path: str) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            stack,
            state,
            lambda_function=function,
            payload_response_only=True,
            retry_on_service_exceptions=False,  # so every Retry below comes from the Saga
            result_path=result_path,
        )

    return Saga(
        stack,
        "Saga",
        steps=[
            SagaStep(action=invoke(f"Reserve{n}", f"$.r.{n}"), compensation=invoke(f"Cancel{n}", f"$.c.{n}"))
            for n in names
        ],
        succeeded=sfn.Succeed(stack, "Done"),
        failed=sfn.Fail(stack, "Undone", error="BookingFailed"),
        on_compensation_failure=sfn.Fail(stack, "Stuck", error="CompensationFailed"),
    )


def _definition(names: tuple[str, ...]) -> tuple[dict, dict]:
    stack = cdk.Stack(cdk.App(), "SagaChainTest")
    saga = _saga(stack, names)
    sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(saga.definition))
    template = Template.from_stack(stack).to_json()
    return template, resolved_definition(template)


@pytest.fixture(scope="module")
def four_steps() -> tuple[dict, dict]:
    return _definition(FOUR)


def test_four_steps_make_every_state_and_nothing_else(four_steps):
    _, definition = four_steps
    expected = {f"Reserve{n}" for n in FOUR} | {f"Cancel{n}" for n in FOUR} | {"Done", "Undone", "Stuck"}
    assert set(definition["States"]) == expected


def test_four_steps_run_forward_in_list_order(four_steps):
    _, definition = four_steps
    assert definition["StartAt"] == "ReserveFlight"
    assert paths(definition["States"], "ReserveFlight", catches=False) == [
        ("ReserveFlight", "ReserveHotel", "ReservePayment", "ReserveCar", "Done")
    ]


def test_the_fourth_step_is_caught_into_its_own_cancel_and_undoes_all_four(four_steps):
    _, definition = four_steps
    states = definition["States"]
    assert states["ReserveCar"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "CancelCar"}
    ]
    assert paths(states, "CancelCar", catches=False) == [
        ("CancelCar", "CancelPayment", "CancelHotel", "CancelFlight", "Undone")
    ]


@pytest.mark.parametrize("failing", range(len(FOUR)))
def test_any_failing_step_undoes_itself_and_every_earlier_step_in_reverse(four_steps, failing):
    _, definition = four_steps
    states = definition["States"]
    (catcher,) = states[f"Reserve{FOUR[failing]}"]["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    expected = (*(f"Cancel{n}" for n in reversed(FOUR[: failing + 1])), "Undone")
    assert paths(states, catcher["Next"], catches=False) == [expected]


def test_every_cancel_gives_up_into_the_compensation_failure_state(four_steps):
    _, definition = four_steps
    states = definition["States"]
    for name in FOUR:
        (catcher,) = states[f"Cancel{name}"]["Catch"]
        assert (catcher["ErrorEquals"], catcher["Next"]) == (["States.ALL"], "Stuck"), name
        assert catcher["ResultPath"] not in (None, "$", "$.failure"), "the original failure would be lost"


def test_actions_retry_only_named_errors_and_cancels_retry_everything_longer(four_steps):
    _, definition = four_steps
    states = definition["States"]
    for name in FOUR:
        (action_retry,) = states[f"Reserve{name}"]["Retry"]
        (cancel_retry,) = states[f"Cancel{name}"]["Retry"]
        assert "States.ALL" not in action_retry["ErrorEquals"]
        assert "TransientFailure" in action_retry["ErrorEquals"]
        assert cancel_retry["ErrorEquals"] == ["States.ALL"]
        assert cancel_retry["MaxAttempts"] > action_retry["MaxAttempts"]
        assert action_retry["JitterStrategy"] == cancel_retry["JitterStrategy"] == "FULL"


def test_tasks_keep_their_own_resources(four_steps):
    """The construct wires states; it does not replace the tasks it is given."""
    template, definition = four_steps
    (function,) = (name for name, res in template["Resources"].items() if res["Type"] == "AWS::Lambda::Function")
    for name in FOUR:
        for state in (f"Reserve{name}", f"Cancel{name}"):
            assert function_logical_id(definition["States"][state]["Resource"]) == function
    assert definition["States"]["ReserveCar"]["ResultPath"] == "$.r.Car"
    assert definition["States"]["CancelCar"]["ResultPath"] == "$.c.Car"


def test_a_single_step_saga_undoes_just_that_step():
    _, definition = _definition(("Flight",))
    states = definition["States"]
    assert paths(states, "ReserveFlight", catches=False) == [("ReserveFlight", "Done")]
    assert paths(states, "ReserveFlight", catches=True) == [
        ("ReserveFlight", "Done"),
        ("ReserveFlight", "CancelFlight", "Undone"),
        ("ReserveFlight", "CancelFlight", "Stuck"),
    ]


def test_a_saga_without_steps_is_refused():
    stack = cdk.Stack(cdk.App(), "EmptySaga")
    with pytest.raises(ValueError, match="at least one step"):
        Saga(
            stack,
            "Saga",
            steps=[],
            succeeded=sfn.Succeed(stack, "Done"),
            failed=sfn.Fail(stack, "Undone"),
            on_compensation_failure=sfn.Fail(stack, "Stuck"),
        )
