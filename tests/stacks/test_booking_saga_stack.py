"""The synthesized BookingSaga template: resources, least-privilege IAM, and the saga's state graph."""

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from booking_saga import contract as booking
from booking_saga.contract import ENVIRONMENT_VARIABLE
from booking_saga.services import SERVICES
from saga.synth import cached_assembly
from stacks.app import build_app
from stacks.function import POWERTOOLS_VERSION
from tests.stacks.definition import function_logical_id, paths, placeholder_ref, resolved_definition

RESERVES = ("ReserveFlight", "ReserveHotel", "ProcessPayment")
CANCELS = ("RefundPayment", "CancelHotel", "CancelFlight")
STATE_TYPES = {
    "ReserveFlight": "Task",
    "ReserveHotel": "Task",
    "ProcessPayment": "Task",
    "BookingConfirmed": "Succeed",
    "RefundPayment": "Task",
    "CancelHotel": "Task",
    "CancelFlight": "Task",
    "BookingFailed": "Fail",
    "SendToDeadLetterQueue": "Task",
    "CompensationFailed": "Fail",
    "ParkFailed": "Fail",
}
# Which handler each Lambda task must invoke, and which table output names that handler's own table.
STATE_HANDLER = {
    "ReserveFlight": "flight.reserve",
    "CancelFlight": "flight.cancel",
    "ReserveHotel": "hotel.reserve",
    "CancelHotel": "hotel.cancel",
    "ProcessPayment": "payment.reserve",
    "RefundPayment": "payment.cancel",
}
API_HANDLER = "bookings_api.handle"  # the HTTP API's function (tests/stacks/test_booking_api.py)
RECONCILER = "reconciler.handle"  # finishes ends no catch saw (tests/stacks/test_reconciler.py)
FUNCTIONS = 8  # six saga steps' functions, the API's, the reconciler's
TABLE_OUTPUT = {"flight": "FlightsTable", "hotel": "HotelsTable", "payment": "PaymentsTable"}
_CANCEL = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
DYNAMODB_ACTIONS = {
    "flight.reserve": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    "hotel.reserve": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    "payment.reserve": {"dynamodb:PutItem"},
    "flight.cancel": _CANCEL,
    "hotel.cancel": _CANCEL,
    "payment.cancel": _CANCEL,
}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# What active tracing lets a function do: send its traces, on "*" since X-Ray has no resource-level permissions.
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
REQUIREMENTS_DEV = Path(__file__).resolve().parents[2] / "requirements-dev.txt"
# Step Functions log delivery and X-Ray have no resource-level permissions: the only "*" resources allowed.
RESOURCELESS_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}
BUSINESS_ERRORS = {"SoldOut", "PaymentDeclined", "InvalidBooking", "ChaosFailure", "BookingCancelled"} | {
    error.__name__ for error in booking.BusinessError.__subclasses__()
}
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


# ---------------------------------------------------------------- helpers


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _references(value) -> set[str]:
    """Logical ids a value points at through Ref or Fn::GetAtt (pseudo parameters excluded)."""
    if isinstance(value, list):
        return set().union(*map(_references, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    if set(value) == {"Ref"}:
        return set() if value["Ref"].startswith("AWS::") else {value["Ref"]}
    if set(value) == {"Fn::GetAtt"}:
        return {_listed(value["Fn::GetAtt"])[0].split(".")[0]}
    return set().union(*map(_references, value.values())) if value else set()


def _resources(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == resource_type}


def _functions(template: dict) -> dict[str, tuple[str, dict]]:
    """handler -> (logical id, properties) for every Lambda function."""
    found = {}
    for name, resource in _resources(template, "AWS::Lambda::Function").items():
        handler = resource["Properties"]["Handler"]
        assert handler not in found, f"two functions run {handler}"
        found[handler] = (name, resource["Properties"])
    return found


def _statements_by_role(template: dict) -> dict[str, list[dict]]:
    """Role logical id -> every statement of every AWS::IAM::Policy attached to it."""
    by_role: dict[str, list[dict]] = {}
    for policy in _resources(template, "AWS::IAM::Policy").values():
        properties = policy["Properties"]
        for role in properties.get("Roles", []):
            by_role.setdefault(role["Ref"], []).extend(_listed(properties["PolicyDocument"]["Statement"]))
        assert not properties.get("Users") and not properties.get("Groups")
    return by_role


def _actions(statement: dict) -> list[str]:
    assert "NotAction" not in statement and "NotResource" not in statement, statement
    return _listed(statement["Action"])


def _table_ids(template: dict) -> dict[str, str]:
    """service -> logical id of its table, read from the stack outputs."""
    return {service: template["Outputs"][output]["Value"]["Ref"] for service, output in TABLE_OUTPUT.items()}


def _task_function(state: dict) -> str:
    """The logical id of the function a Lambda task invokes (Parameters-style or direct ARN)."""
    if state["Resource"].endswith(":states:::lambda:invoke"):
        return function_logical_id(state["Parameters"]["FunctionName"])
    return function_logical_id(state["Resource"])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template(assembly) -> dict:
    return assembly.template


@pytest.fixture(scope="module")
def assertions(template) -> Template:
    return Template.from_json(template)


@pytest.fixture(scope="module")
def states(template) -> dict:
    return resolved_definition(template)["States"]


# ---------------------------------------------------------------- resources


def test_four_on_demand_tables_with_pitr_encryption_and_a_string_pk(assertions, template):
    """One per service, and the bookings table (every booking id accepted)."""
    assertions.resource_count_is("AWS::DynamoDB::Table", 4)
    assertions.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        },
    )
    # one table per service, each its own resource, and the bookings table
    assert len(set(_table_ids(template).values())) == 3
    bookings = template["Outputs"]["BookingsTable"]["Value"]["Ref"]
    assert {*_table_ids(template).values(), bookings} == set(_resources(template, "AWS::DynamoDB::Table"))


def test_every_function_is_arm64_python313_with_explicit_timeout_and_memory(assertions, template):
    assertions.resource_count_is("AWS::Lambda::Function", FUNCTIONS)
    assertions.all_resources_properties(
        "AWS::Lambda::Function",
        {"Runtime": "python3.13", "Architectures": ["arm64"], "Timeout": Match.any_value()},
    )
    assert set(_functions(template)) == {*STATE_HANDLER.values(), API_HANDLER, RECONCILER}
    for handler, (_, properties) in _functions(template).items():
        assert isinstance(properties.get("MemorySize"), int) and properties["MemorySize"] >= 128, handler


def test_each_lambda_timeout_is_shorter_than_its_task_timeout(template, states):
    functions = template["Resources"]
    for name in STATE_HANDLER:
        state = states[name]
        lambda_timeout = functions[_task_function(state)]["Properties"]["Timeout"]
        assert lambda_timeout < state["TimeoutSeconds"], name


def test_the_functions_code_asset_is_the_lambda_code_alone(assembly):
    """What `cdk deploy` zips for the functions: the handler modules and the booking_saga package, without the
    bytecode and the packaging metadata (booking_saga.egg-info) a development install leaves beside them."""
    manifest = json.loads((assembly.directory / "BookingSaga.assets.json").read_text())
    (code,) = [asset for asset in manifest["files"].values() if asset["source"]["packaging"] == "zip"]
    directory = assembly.directory / code["source"]["path"]
    files = {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}

    assert {"flight.py", "booking_saga/ledger.py"} <= files
    assert [name for name in files if not name.endswith(".py")] == []


def test_each_task_invokes_its_own_handler(template, states):
    """A swapped ARN would run, say, the hotel's cancel as the flight's: the wiring is by name."""
    for name, handler in STATE_HANDLER.items():
        logical_id = _task_function(states[name])
        assert template["Resources"][logical_id]["Properties"]["Handler"] == handler, name


def test_each_function_has_its_own_role_without_managed_or_inline_policies(template):
    roles = _resources(template, "AWS::IAM::Role")
    function_roles = [props["Role"]["Fn::GetAtt"][0] for _, props in _functions(template).values()]
    assert len(set(function_roles)) == FUNCTIONS, "functions share a role"
    for role_id in function_roles:
        properties = roles[role_id]["Properties"]
        assert not properties.get("ManagedPolicyArns"), role_id
        assert not properties.get("Policies"), role_id
        (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}, role_id


def test_each_function_logs_to_its_own_group(template):
    log_groups = _resources(template, "AWS::Logs::LogGroup")
    seen = []
    for handler, (_, properties) in _functions(template).items():
        group = properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in log_groups, handler
        assert log_groups[group]["Properties"].get("RetentionInDays"), f"{handler} logs are kept forever"
        seen.append(group)
    assert len(set(seen)) == FUNCTIONS


@pytest.mark.parametrize("queue", ["ParkingCompensationDeadLetters", "ReconcilerFailures"])
def test_each_dead_letter_queue_is_encrypted_and_refuses_plain_http(assertions, template, queue):
    assertions.resource_count_is("AWS::SQS::Queue", 2)
    (queue_id,) = [name for name in _resources(template, "AWS::SQS::Queue") if name.startswith(queue)]
    queue = template["Resources"][queue_id]["Properties"]
    assert queue.get("SqsManagedSseEnabled") is True or queue.get("KmsMasterKeyId")
    assertions.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "sqs:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_state_machine_is_standard_traced_logged_and_time_limited(assertions, template):
    assertions.resource_count_is("AWS::StepFunctions::StateMachine", 1)
    assertions.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": {"Level": "ERROR", "Destinations": Match.any_value()},
        },
    )
    timeout = resolved_definition(template).get("TimeoutSeconds")
    assert isinstance(timeout, int) and timeout > 0


def _worst_case_seconds(state: dict) -> float:
    """How long a Task can take before it gives up: every attempt timing out, every retry waiting its longest."""
    if state["Type"] != "Task":
        return 0.0
    attempts, waiting = 1, 0.0
    for retrier in state.get("Retry", []):
        interval = retrier.get("IntervalSeconds", 1)
        rate = retrier.get("BackoffRate", 2.0)
        cap = retrier.get("MaxDelaySeconds", float("inf"))
        max_attempts = retrier.get("MaxAttempts", 3)
        attempts += max_attempts
        waiting += sum(min(interval * rate**n, cap) for n in range(max_attempts))
    return attempts * state.get("TimeoutSeconds", float("inf")) + waiting


def test_execution_timeout_leaves_room_for_the_slowest_compensation(template):
    """The execution timeout must not kill a saga that is still (slowly, with retries) undoing itself."""
    definition = resolved_definition(template)
    states = definition["States"]
    slowest = max(
        sum(_worst_case_seconds(states[name]) for name in path)
        for path in paths(states, definition["StartAt"], catches=True)
    )
    assert slowest < definition["TimeoutSeconds"], f"worst case {slowest:.0f}s"


def test_outputs_name_the_machine_the_tables_and_the_queue(template):
    outputs = template["Outputs"]
    expected = {"StateMachineArn", "FlightsTable", "HotelsTable", "PaymentsTable", "BookingsTable"}
    expected |= {"DeadLetterQueueUrl", "BookingContract"}
    assert expected <= set(outputs)
    resources = template["Resources"]

    def target(output: str) -> dict:
        return resources[outputs[output]["Value"]["Ref"]]

    assert target("StateMachineArn")["Type"] == "AWS::StepFunctions::StateMachine"
    assert target("DeadLetterQueueUrl")["Type"] == "AWS::SQS::Queue"  # Ref of a queue is its URL
    for service, output in TABLE_OUTPUT.items():
        assert target(output)["Type"] == "AWS::DynamoDB::Table"
        assert outputs[output]["Value"]["Ref"].lower().startswith(service), output


# ---------------------------------------------------------------- least privilege


def test_only_the_functions_the_state_machine_and_api_gateway_logging_have_roles(template):
    (machine,) = _resources(template, "AWS::StepFunctions::StateMachine").values()
    (account,) = _resources(template, "AWS::ApiGateway::Account").values()
    logging_role = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    expected = {props["Role"]["Fn::GetAtt"][0] for _, props in _functions(template).values()}
    expected.add(machine["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    assert set(_resources(template, "AWS::IAM::Role")) == {*expected, logging_role}
    assert set(_statements_by_role(template)) <= expected
    (trust,) = template["Resources"][logging_role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}


@pytest.mark.parametrize("handler", sorted(DYNAMODB_ACTIONS))
def test_function_may_touch_only_its_own_table_and_log_group(template, handler):
    logical_id, properties = _functions(template)[handler]
    role = properties["Role"]["Fn::GetAtt"][0]
    own_table = _table_ids(template)[handler.split(".")[0]]
    own_log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
    statements = _statements_by_role(template)[role]

    actions = [action for statement in statements for action in _actions(statement)]
    assert not [action for action in actions if "*" in action], "wildcard action"
    assert {action.split(":")[0] for action in actions} == {"dynamodb", "logs", "xray"}
    assert {action for action in actions if action.startswith("dynamodb:")} == DYNAMODB_ACTIONS[handler]
    assert {action for action in actions if action.startswith("logs:")} == LOG_ACTIONS
    assert {action for action in actions if action.startswith("xray:")} == XRAY_ACTIONS

    for statement in statements:
        assert statement["Effect"] == "Allow"
        if {action.split(":")[0] for action in _actions(statement)} == {"xray"}:
            assert statement["Resource"] == "*", statement  # the only '*': X-Ray's actions take no resource
            continue
        resources = _listed(statement["Resource"])
        assert not [resource for resource in resources if isinstance(resource, str)], "literal ARN or '*'"
        services = {action.split(":")[0] for action in _actions(statement)}
        if "dynamodb" in services:
            assert _references(resources) == {own_table}, statement
            # the table itself (or its indexes), never another table
            for resource in resources:
                arn = resource if "Fn::GetAtt" in resource else resource["Fn::Join"][1][0]
                assert arn == {"Fn::GetAtt": [own_table, "Arn"]}, statement
        if "logs" in services:
            assert _references(resources) == {own_log_group}, statement
    # and the function is told to use that very table
    assert properties["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": own_table}, logical_id


def test_state_machine_may_invoke_only_the_six_saga_functions_and_send_only_to_the_queue(template):
    (machine,) = _resources(template, "AWS::StepFunctions::StateMachine").values()
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "states.amazonaws.com"}]
    assert not template["Resources"][role]["Properties"].get("ManagedPolicyArns")
    (queue,) = [name for name in _resources(template, "AWS::SQS::Queue") if name.startswith("Parking")]
    functions = {
        logical_id for handler, (logical_id, _) in _functions(template).items() if handler in STATE_HANDLER.values()
    }
    assert len(functions) == 6

    invoked = set()
    sends = set()
    for statement in _statements_by_role(template)[role]:
        assert statement["Effect"] == "Allow"
        actions = set(_actions(statement))
        assert not [action for action in actions if "*" in action], "wildcard action"
        resources = _listed(statement["Resource"])
        services = {action.split(":")[0] for action in actions}
        assert services <= {"lambda", "sqs", "logs", "xray"}, statement
        if "lambda" in services:
            assert actions == {"lambda:InvokeFunction"}, statement
            for resource in resources:
                # the function, or a version/alias of it: "<arn>:*"
                if "Fn::Join" in resource:
                    separator, (arn, *rest) = resource["Fn::Join"]
                    assert (separator, rest) == ("", [":*"]), resource
                    resource = arn
                (function,) = _references(resource)
                assert resource == {"Fn::GetAtt": [function, "Arn"]}, resource
                invoked.add(function)
        elif "sqs" in services:
            assert actions == {"sqs:SendMessage"}, statement
            assert resources == [{"Fn::GetAtt": [queue, "Arn"]}], statement
            sends.add(queue)
        else:
            assert actions <= RESOURCELESS_ACTIONS, statement
    assert invoked == functions
    assert sends == {queue}


def test_no_policy_grants_a_wildcard_action(template):
    for name, policy in _resources(template, "AWS::IAM::Policy").items():
        for statement in _listed(policy["Properties"]["PolicyDocument"]["Statement"]):
            assert not [action for action in _actions(statement) if "*" in action], name


# ---------------------------------------------------------------- environment


def _environments(template: dict) -> dict[str, dict]:
    return {handler: props["Environment"]["Variables"] for handler, (_, props) in _functions(template).items()}


def _contracts(template: dict) -> dict[str, dict]:
    """handler -> the contract in its environment; every function, the API's too, has the stack's one contract."""
    contracts = {handler: json.loads(env[ENVIRONMENT_VARIABLE]) for handler, env in _environments(template).items()}
    output = json.loads(template["Outputs"]["BookingContract"]["Value"])
    assert all(contract == output for contract in contracts.values()), "a function with another contract"
    return contracts


def _chaos_settings(template: dict) -> dict[str, bool]:
    return {handler: contract["chaos_enabled"] for handler, contract in _contracts(template).items()}


def test_dev_stack_enables_chaos_on_every_function(template):
    assert _chaos_settings(template) == dict.fromkeys([*STATE_HANDLER.values(), API_HANDLER, RECONCILER], True)


def test_only_the_last_steps_reserve_confirms_bookings(template, states):
    """The reserve just before BookingConfirmed counts BookingsConfirmed; no other function may."""
    definition = resolved_definition(template)
    (forward,) = paths(states, definition["StartAt"], catches=False)
    assert forward[-1] == "BookingConfirmed"
    last_reserve = template["Resources"][_task_function(states[forward[-2]])]["Properties"]["Handler"]
    confirming = {
        handler: env["CONFIRMS_BOOKING"]
        for handler, env in _environments(template).items()
        if "CONFIRMS_BOOKING" in env
    }
    assert confirming == {last_reserve: "true"}


def test_the_confirming_step_follows_the_order_of_the_steps():
    """Reordering the services moves CONFIRMS_BOOKING with the last step: no service is named for it."""
    app = build_app(services=tuple(reversed(SERVICES)))
    template = Template.from_stack(app.node.find_child("BookingSaga")).to_json()

    confirming = {handler for handler, env in _environments(template).items() if "CONFIRMS_BOOKING" in env}
    assert confirming == {"flight.reserve"}


# ---------------------------------------------------------------- Powertools


def _powertools_parameter(template: dict, properties: dict) -> str:
    """The SSM path of the one layer a function has, which must be a parameter of the template."""
    (layer,) = properties["Layers"]
    parameter = template["Parameters"][layer["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    return parameter["Default"]


def test_every_function_has_the_powertools_layer_aws_publishes_in_the_pinned_version(template):
    functions = _functions(template)
    assert set(STATE_HANDLER.values()) <= set(functions)
    for handler, (_, properties) in functions.items():
        # the layer for the function's own architecture and runtime (python3.13 -> /python3.13/)
        expected = f"/aws/service/powertools/python/{properties['Architectures'][0]}/{properties['Runtime']}/"
        assert _powertools_parameter(template, properties) == expected + POWERTOOLS_VERSION, handler
    # one layer (and one parameter) for the whole stack
    assert len({json.dumps(properties["Layers"]) for _, properties in functions.values()}) == 1


def test_the_layers_version_is_the_one_requirements_dev_pins():
    pins = re.findall(r"^aws-lambda-powertools(?:\[[\w,]+\])?==(\S+)$", REQUIREMENTS_DEV.read_text(), re.MULTILINE)
    assert pins == [POWERTOOLS_VERSION]


def test_every_function_is_traced_and_tells_powertools_its_service_and_namespace(template):
    for handler, (_, properties) in _functions(template).items():
        assert properties["TracingConfig"] == {"Mode": "Active"}, handler
        env = properties["Environment"]["Variables"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "BookingSaga", handler
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO", handler
    services = {handler: env["POWERTOOLS_SERVICE_NAME"] for handler, env in _environments(template).items()}
    for handler in STATE_HANDLER.values():
        assert services[handler] == handler.split(".")[0]


def test_each_stage_counts_its_metrics_in_its_own_namespace(production):
    namespaces = {env["POWERTOOLS_METRICS_NAMESPACE"] for env in _environments(production).values()}
    assert namespaces == {"BookingSaga-production"}


def test_the_default_contract_takes_the_documented_currencies_each_with_its_minor_units(template):
    (contract, *_) = _contracts(template).values()
    assert contract["currencies"] == {
        code: {"minor_units": booking.MINOR_UNITS[code], "payment_limit": str(limit)}
        for code, limit in booking.DEFAULT_PAYMENT_LIMITS.items()
    }
    assert contract["currencies"]["JPY"]["minor_units"] == 0
    assert contract["currencies"]["KWD"]["minor_units"] == 3


# ---------------------------------------------------------------- the saga's state graph


def test_state_names_and_types(states):
    assert {name: state["Type"] for name, state in states.items()} == STATE_TYPES


def test_forward_chain_runs_the_reserves_in_order_then_confirms(template, states):
    definition = resolved_definition(template)
    assert definition["StartAt"] == "ReserveFlight"
    assert paths(states, "ReserveFlight", catches=False) == [(*RESERVES, "BookingConfirmed")]


@pytest.mark.parametrize(
    ("reserve", "cancel"),
    [("ReserveFlight", "CancelFlight"), ("ReserveHotel", "CancelHotel"), ("ProcessPayment", "RefundPayment")],
)
def test_each_reserve_catches_everything_into_its_own_cancel(states, reserve, cancel):
    assert states[reserve]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": cancel}]


@pytest.mark.parametrize(
    ("reserve", "undo"),
    [
        ("ProcessPayment", ["RefundPayment", "CancelHotel", "CancelFlight", "BookingFailed"]),
        ("ReserveHotel", ["CancelHotel", "CancelFlight", "BookingFailed"]),
        ("ReserveFlight", ["CancelFlight", "BookingFailed"]),
    ],
)
def test_a_failed_reserve_undoes_in_reverse_order_and_fails(states, reserve, undo):
    (catch_target,) = [catcher["Next"] for catcher in states[reserve]["Catch"]]
    # compensations succeeding: exactly one way down, in reverse order, to BookingFailed
    assert paths(states, catch_target, catches=False) == [tuple(undo)]
    # compensations failing too: every other way ends in the dead-letter queue, then CompensationFailed (or, if
    # the queue cannot take it, ParkFailed, for the reconciler)
    every_path = paths(states, catch_target, catches=True)
    assert tuple(undo) in every_path
    for path in every_path:
        assert path[-1] in ("BookingFailed", "CompensationFailed", "ParkFailed"), path
        assert not set(path) & {*RESERVES, "BookingConfirmed"}, f"compensation re-enters the forward chain: {path}"
        if path[-1] != "BookingFailed":
            assert path[-2] == "SendToDeadLetterQueue", path
    cancels = undo[:-1]
    assert len(every_path) == 1 + 2 * len(cancels)  # each cancel can divert once, to the dead-letter queue


def test_no_other_path_reaches_booking_failed(template, states):
    """BookingFailed is reached only after the whole compensation chain (from CancelFlight)."""
    definition = resolved_definition(template)
    for path in paths(states, definition["StartAt"], catches=True):
        if path[-1] == "BookingFailed":
            assert path[-2] == "CancelFlight", path


@pytest.mark.parametrize("cancel", CANCELS)
def test_each_cancel_parks_in_the_dead_letter_queue_when_it_gives_up(template, states, cancel):
    (catcher,) = states[cancel]["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    assert catcher["Next"] == "SendToDeadLetterQueue"
    # keeps the saga's state for the message, and the original failure next to the compensation's
    assert catcher.get("ResultPath") not in (None, "$", "$.failure")
    assert f"{catcher['ResultPath']}.Error" in states["CompensationFailed"]["CausePath"]
    assert paths(states, "SendToDeadLetterQueue") == [
        ("SendToDeadLetterQueue", "CompensationFailed"),
        ("SendToDeadLetterQueue", "ParkFailed"),  # the send itself failing: for the reconciler
    ]
    park = states["SendToDeadLetterQueue"]
    assert park["Resource"] == "arn:aws:states:::sqs:sendMessage"
    (queue,) = [name for name in _resources(template, "AWS::SQS::Queue") if name.startswith("Parking")]
    assert park["Parameters"]["QueueUrl"] == placeholder_ref(template, queue)
    assert park["Parameters"]["MessageBody"].get("saga.$") == "$"


def test_reserves_never_retry_business_errors(states):
    assert {"SoldOut", "PaymentDeclined", "InvalidBooking", "ChaosFailure", "BookingCancelled"} <= BUSINESS_ERRORS
    for name in RESERVES:
        retried = {error for retrier in states[name].get("Retry", []) for error in retrier["ErrorEquals"]}
        assert not retried & BUSINESS_ERRORS, name
        # a catch-all retry would retry the business errors too
        assert not retried & {"States.ALL", "States.TaskFailed"}, name


def test_reserves_retry_transient_errors_with_jittered_backoff(states):
    for name in RESERVES:
        for error in {"TransientFailure", *LAMBDA_SERVICE_ERRORS}:
            (retrier,) = [r for r in states[name].get("Retry", []) if error in r["ErrorEquals"]]
            assert retrier.get("JitterStrategy") == "FULL", (name, error)
            assert retrier.get("BackoffRate", 2.0) > 1, (name, error)
            assert retrier.get("MaxAttempts", 3) >= 1, (name, error)


def test_compensations_retry_everything_longer_than_reserves(states):
    most_reserve_attempts = max(r.get("MaxAttempts", 3) for name in RESERVES for r in states[name].get("Retry", []))
    for name in CANCELS:
        (retrier,) = [r for r in states[name].get("Retry", []) if "States.ALL" in r["ErrorEquals"]]
        assert retrier.get("MaxAttempts", 3) > most_reserve_attempts, name
        assert retrier.get("JitterStrategy") == "FULL", name
        assert retrier.get("BackoffRate", 2.0) > 1, name


def test_every_task_has_a_timeout(states):
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert len(tasks) == 7
    for name, state in tasks.items():
        assert isinstance(state.get("TimeoutSeconds"), int) and state["TimeoutSeconds"] > 0, name


@pytest.mark.parametrize("name", sorted(STATE_HANDLER))
def test_lambda_gets_the_original_booking_its_state_name_and_its_execution(states, name):
    parameters = states[name]["Parameters"]
    payload = parameters.get("Payload", parameters) if "FunctionName" in parameters else parameters
    assert payload == {"step.$": "$$.State.Name", "execution.$": "$$.Execution.Id", "booking.$": "$$.Execution.Input"}
    # the result goes under its own key: the original input stays intact for the cancels
    assert states[name]["ResultPath"] not in (None, "$")


def test_failure_states_carry_the_error(states):
    assert states["BookingFailed"].get("ErrorPath") == "$.failure.Error"
    assert states["BookingFailed"].get("CausePath") == "$.failure.Cause"
    assert states["CompensationFailed"].get("Error") == "CompensationFailed"


# ---------------------------------------------------------------- context


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> dict:
    """The production stage, synthesized with cdk-nag like the default stage."""
    outdir = cached_assembly(context={"stage": "production"})
    assert not (outdir / "BookingSaga.template.json").exists()
    return json.loads((outdir / "BookingSaga-production.template.json").read_text())


@pytest.fixture(scope="module")
def dev_without_chaos() -> dict:
    """Synthesized once while the app is unchanged (``cached_assembly``), like the stages."""
    outdir = cached_assembly(context={"chaos": "false", "payment_limits": '{"USD": 1234.5}', "log_level": "all"})
    return json.loads((outdir / "BookingSaga.template.json").read_text())


def _stage(stage: str) -> dict:
    assembly = cached_assembly(context={"stage": stage})
    return json.loads((assembly / f"BookingSaga-{stage}.template.json").read_text())


def test_production_stage_turns_chaos_off(production):
    assert set(_chaos_settings(production).values()) == {False}


def _assert_protected(template: dict) -> None:
    assert set(_chaos_settings(template).values()) == {False}
    tables = _resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 4
    for name, table in tables.items():
        assert table.get("DeletionPolicy") == "Retain", name
        assert table.get("UpdateReplacePolicy") == "Retain", name
        assert table["Properties"].get("DeletionProtectionEnabled") is True, name


def test_production_stage_retains_and_protects_its_tables(production):
    _assert_protected(production)


@pytest.mark.parametrize("stage", ["prd", "live", "staging", "Dev", "devops"])
def test_every_stage_not_explicitly_for_development_is_protected(stage):
    """Protection is the default: a stage is unprotected only if named dev, test or dev-<name>."""
    _assert_protected(_stage(stage))


@pytest.mark.parametrize("stage", ["test", "dev-alice"])
def test_development_stages_have_chaos_and_go_with_the_stack(stage):
    template = _stage(stage)
    assert set(_chaos_settings(template).values()) == {True}
    for name, table in _resources(template, "AWS::DynamoDB::Table").items():
        assert table.get("DeletionPolicy") == "Delete", name


def test_dev_stage_tables_can_be_torn_down(template):
    for name, table in _resources(template, "AWS::DynamoDB::Table").items():
        assert table.get("DeletionPolicy") == "Delete", name


def test_chaos_context_turns_chaos_off_on_dev(dev_without_chaos):
    assert set(_chaos_settings(dev_without_chaos).values()) == {False}


def test_payment_limits_context_sets_the_currencies_the_stack_takes(dev_without_chaos):
    (contract, *_) = _contracts(dev_without_chaos).values()
    assert contract["currencies"] == {"USD": {"minor_units": 2, "payment_limit": "1234.5"}}


def test_log_level_context_sets_what_the_state_machine_logs(dev_without_chaos):
    (machine,) = _resources(dev_without_chaos, "AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


@pytest.mark.parametrize(
    "context",
    [
        {"stage": "production", "chaos": "true"},
        {"stage": "production", "chaos": True},
        {"stage": "prod-eu", "chaos": "TRUE"},
        {"stage": "prd", "chaos": "true"},
        {"stage": "live", "chaos": True},
        {"stage": "a b"},
        {"stage": "../x"},
        {"chaos": "maybe"},
        {"chaos": "yes"},
        {"payment_limits": '{"JPY": 0}'},
        {"payment_limits": '{"JPY": -5}'},
        {"payment_limits": '{"JPY": "lots"}'},
        {"payment_limits": '{"JPY": 10.5}'},
        {"payment_limits": '{"ZZZ": 100}'},
        {"payment_limits": "{}"},
        {"payment_limits": "JPY=500000"},
        {"log_level": "DEBUG"},
    ],
)
def test_bad_context_is_refused(context):
    with pytest.raises(ValueError, match=r"^(context|chaos) "):
        build_app(context=context)
