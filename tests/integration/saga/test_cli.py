"""Every `saga` command, end to end, against the stack deployed in the embedded local cloud."""

import json

import pytest

from saga.bookings import outcome_of
from saga.cli import main
from saga.definition import compensation_chain
from saga.synth import cached_assembly

HAPPY_PATH = ["ReserveFlight", "ReserveHotel", "ProcessPayment", "BookingConfirmed"]
FAILED_AT = {
    "flight": ["ReserveFlight", "CancelFlight", "BookingFailed"],
    "hotel": ["ReserveFlight", "ReserveHotel", "CancelHotel", "CancelFlight", "BookingFailed"],
    "payment": [*HAPPY_PATH[:3], "RefundPayment", "CancelHotel", "CancelFlight", "BookingFailed"],
}


def run_json(saga, *args: str) -> tuple[int, object]:
    code, out, _ = saga(*args, "--json")
    return code, json.loads(out)


def test_book_and_wait_prints_the_path_and_exits_0_when_confirmed(saga):
    code, out, err = saga("book", "--booking-id", "cli-ok-1", "--wait")

    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines() if line.strip().startswith("✓")] == HAPPY_PATH
    assert "=> CONFIRMED" in out


@pytest.mark.parametrize("step", ["flight", "hotel", "payment"])
def test_book_with_fail_at_exits_1_and_reports_the_compensations(saga, step):
    code, outcome = run_json(saga, "book", "--booking-id", f"cli-fail-{step}", "--fail-at", step, "--wait")

    assert code == 1
    assert [state["name"] for state in outcome["path"]] == FAILED_AT[step]
    assert outcome["verdict"] == "compensated"
    assert outcome["error"] == "ChaosFailure"
    assert outcome["compensations"] == [name for name in FAILED_AT[step] if name.startswith(("Cancel", "Refund"))]


def test_book_uses_the_flags_for_the_booking(saga, deployment):
    seats = deployment.ledger("flight").available("JL5")
    code, outcome = run_json(
        saga, "book", "--booking-id", "cli-flags-1", "--flight", "JL5", "--seats", "4", "--hotel", "OSAKA-BAY",
        "--rooms", "2", "--amount", "1234.50", "--currency", "EUR", "--wait",
    )  # fmt: skip

    assert (code, outcome["verdict"]) == (0, "confirmed")
    assert deployment.ledger("flight").available("JL5") == seats - 4
    charge = deployment.ledger("payment").record("cli-flags-1")
    assert (str(charge["amount"]), charge["currency"]) == ("1234.5", "EUR")


def test_book_and_status_through_the_http_api(saga, deployment):
    code, out, err = saga("book", "--api", "--booking-id", "cli-api-1", "--fail-at", "hotel", "--wait")
    _, direct, _ = saga("book", "--booking-id", "cli-api-2", "--fail-at", "hotel", "--wait")

    assert code == 1, err
    # the same booking looks the same through either transport: the path, the failure, the compensations
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [line.split()[:2] for line in direct.splitlines()[1:]]
    assert "ChaosFailure: forced to fail by chaos.fail_at=hotel" in out
    assert out.splitlines()[-1] == "  => COMPENSATED"
    code, status = run_json(saga, "status", "--api", "cli-api-1")
    assert (code, status["verdict"], status["failed_step"]) == (0, "compensated", "ReserveHotel")
    assert status["cause"] == "ReserveHotel: forced to fail by chaos.fail_at=hotel"  # no stack trace, no paths
    assert status == {
        key: value for key, value in outcome_of(deployment, "cli-api-1").to_json().items() if key != "path"
    }
    code, again = run_json(saga, "book", "--api", "--booking-id", "cli-api-1", "--fail-at", "hotel")
    assert (code, again["execution_arn"]) == (0, status["execution_arn"])  # the repeat starts nothing
    code, _, err = saga("book", "--api", "--booking-id", "cli-api-1", "--seats", "1")
    assert (code, err) == (
        2,
        "saga: error: booking cli-api-1 already exists with other details: use another booking id\n",
    )


def test_book_without_wait_starts_the_saga_and_status_follows_it(saga):
    code, started = run_json(saga, "book", "--booking-id", "cli-async-1")
    assert code == 0
    assert started["booking_id"] == "cli-async-1"
    assert ":execution:BookingSaga-" in started["execution_arn"]
    assert started["execution_arn"].endswith(":cli-async-1")

    code, status = run_json(saga, "status", "cli-async-1")
    assert code == 0
    assert status["verdict"] in {"running", "confirmed"}
    assert "path" not in status


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--seats", "0"], "flight.seats must be a whole number from 1 to 9"),
        (["--rooms", "10"], "hotel.rooms must be a whole number from 1 to 9"),
        (["--currency", "yen"], "payment.currency must be one of EUR, GBP, JPY, KWD, USD"),
        (["--currency", "XXX"], "payment.currency must be one of EUR, GBP, JPY, KWD, USD"),
        (["--amount", "-5"], "payment.amount must be above 0"),
        (["--amount", "1.5"], "with no decimals (JPY)"),
        (["--amount", "1.005", "--currency", "USD"], "with at most 2 decimals (USD)"),
        (["--booking-id", ""], "booking_id must be 1-64 characters"),
        (["--flight", "NH 101"], "flight.flight_id must be 1-64 characters"),
        (["--booking-id", "a/b"], "booking_id must be 1-64 characters"),
    ],
)
def test_a_bad_booking_is_refused_before_anything_starts(saga, deployment, flags, problem):
    executions = deployment.client("stepfunctions").list_executions(stateMachineArn=deployment.state_machine_arn)

    code, _, err = saga("book", *flags)

    assert code == 2
    assert err.startswith("saga: error: invalid input: ") and problem in err
    assert err.count("\n") == 1 and "Traceback" not in err
    after = deployment.client("stepfunctions").list_executions(stateMachineArn=deployment.state_machine_arn)
    assert len(after["executions"]) == len(executions["executions"])


def test_a_booking_id_is_used_once(saga):
    assert saga("book", "--booking-id", "cli-once-1", "--wait")[0] == 0

    code, _, err = saga("book", "--booking-id", "cli-once-1", "--seats", "1")
    same = saga("book", "--booking-id", "cli-once-1", "--wait")

    assert code == 2
    assert err == "saga: error: booking cli-once-1 already exists with other details: use another booking id\n"
    assert same[0] == 0  # the same booking again starts nothing, and reports the one there is
    assert "booking cli-once-1 already exists with these details: nothing new started" in same[1]
    assert "=> CONFIRMED" in same[1]


def test_status_and_history_of_a_parked_compensation(saga):
    saga("book", "--booking-id", "cli-stuck-1", "--fail-at", "payment", "--fail-cancel", "hotel", "--wait")

    code, out, _ = saga("status", "cli-stuck-1")
    assert code == 0
    assert out.splitlines()[0] == "cli-stuck-1: PARKED"
    assert "failed at ProcessPayment: ChaosFailure: forced to fail by chaos.fail_at=payment" in out
    assert "Its state is in the dead-letter queue." in out

    code, history = run_json(saga, "history", "cli-stuck-1")
    assert code == 0
    by_name = {state["name"]: state for state in history["path"]}
    assert list(by_name) == [
        *HAPPY_PATH[:3],
        "RefundPayment",
        "CancelHotel",
        "SendToDeadLetterQueue",
        "CompensationFailed",
    ]
    assert (by_name["CancelHotel"]["attempts"], by_name["CancelHotel"]["error"]) == (9, "ChaosFailure")
    assert by_name["CancelHotel"]["cause"] == "forced to fail by chaos.fail_cancel=hotel"
    assert all(state["seconds"] is not None and state["seconds"] >= 0 for state in history["path"])

    code, out, _ = saga("history", "cli-stuck-1")
    header, *rows = out.splitlines()[1:]
    assert header.split() == ["state", "type", "duration", "attempts", "error", "cause"]
    assert [row.split()[0] for row in rows] == list(by_name)


def test_replay_finishes_every_parked_compensation(saga, deployment):
    for booking_id, fail_at, fail_cancel in (("cli-parked-1", "payment", "hotel"), ("cli-parked-2", "hotel", "flight")):
        assert saga("book", "--booking-id", booking_id, "--fail-at", fail_at, "--fail-cancel", fail_cancel, "--wait")[0]
    seats, rooms = deployment.ledger("flight").available("NH101"), deployment.ledger("hotel").available("TOKYO-GRAND")

    code, replays = run_json(saga, "replay", "--limit", "100")

    assert code == 0
    by_booking = {replay["booking_id"]: replay for replay in replays}
    assert {"cli-parked-1", "cli-parked-2"} <= by_booking.keys()
    assert all(replay["finished"] for replay in replays)
    first = by_booking["cli-parked-1"]["cancels"]
    assert [(cancel["step"], cancel["released"]) for cancel in first] == [
        ("RefundPayment", False),  # refunded before the hotel's cancel failed: a no-op now
        ("CancelHotel", True),
        ("CancelFlight", True),
    ]
    second = by_booking["cli-parked-2"]["cancels"]
    assert [(cancel["step"], cancel["released"]) for cancel in second] == [
        ("RefundPayment", False),  # never charged: nothing to refund
        ("CancelHotel", False),  # already undone by the saga before the flight's cancel failed
        ("CancelFlight", True),
    ]
    for booking_id in by_booking:
        for service in ("flight", "hotel", "payment"):
            item = deployment.ledger(service).record(booking_id)
            assert item is None or item["status"] == "CANCELLED", (booking_id, service)
    released = [cancel["step"] for replay in replays for cancel in replay["cancels"] if cancel["released"]]
    assert deployment.ledger("flight").available("NH101") == seats + 2 * released.count("CancelFlight")  # 2 seats each
    assert deployment.ledger("hotel").available("TOKYO-GRAND") == rooms + released.count("CancelHotel")
    assert saga("replay")[1].startswith("nothing to replay: no booking is parked")


def test_list_shows_each_bookings_outcome(saga):
    saga("book", "--booking-id", "cli-list-ok", "--wait")
    saga("book", "--booking-id", "cli-list-undone", "--fail-at", "flight", "--wait")
    saga("book", "--booking-id", "cli-list-stuck", "--fail-at", "flight", "--fail-cancel", "flight", "--wait")

    code, listed = run_json(saga, "list", "--limit", "100")

    assert code == 0
    verdicts = {entry["booking_id"]: entry["verdict"] for entry in listed}
    assert verdicts["cli-list-ok"] == "confirmed"
    assert verdicts["cli-list-undone"] == "compensated"
    assert verdicts["cli-list-stuck"] == "parked"
    assert [entry["started"] for entry in listed] == sorted((entry["started"] for entry in listed), reverse=True)
    code, out, _ = saga("list", "--limit", "100")
    assert any(line.split()[:2] == ["cli-list-ok", "confirmed"] for line in out.splitlines())


@pytest.mark.parametrize("step", ["flight", "hotel", "payment"])
def test_chaos_passes_when_everything_is_undone(saga, step):
    code, report = run_json(saga, "chaos", "--fail-at", step, "--booking-id", f"cli-chaos-{step}")

    assert code == 0
    assert report["passed"] is True
    assert [check["passed"] for check in report["checks"]] == [True] * 5
    assert [state["name"] for state in report["outcome"]["path"]] == FAILED_AT[step]


def test_chaos_prints_a_verdict(saga):
    code, out, _ = saga("chaos", "--fail-at", "hotel")

    assert code == 0
    assert out.splitlines()[-1] == "Chaos test PASSED: nothing stays reserved or charged"
    assert "✓ the compensations ran in reverse order: ran CancelHotel → CancelFlight → BookingFailed" in out


@pytest.fixture(scope="module")
def protected(cloud, tmp_path_factory) -> str:
    """A protected stage (chaos off, as on every stage not named for development) beside the dev stack."""
    assembly = cached_assembly(context={"stage": "prd"})
    cloud.deploy(assembly, "BookingSaga-prd")
    return "BookingSaga-prd"


@pytest.mark.parametrize(
    "args",
    [
        ["chaos", "--fail-at", "payment"],
        ["book", "--fail-at", "hotel", "--wait"],
        ["book", "--fail-cancel", "flight"],
    ],
)
def test_chaos_on_a_stack_with_chaos_off_is_refused_and_books_nothing(saga, cloud, protected, args):
    """Forced to fail or not, it would book a real trip there and leave it held."""
    code, out, err = saga(*args, "--stack", protected)

    assert (code, out) == (2, "")
    assert err == f"saga: error: chaos is off in stack {protected}: it would book a real trip; nothing was booked\n"
    stepfunctions = cloud.client("stepfunctions")
    (machine,) = [
        m for m in stepfunctions.list_state_machines()["stateMachines"] if m["name"].startswith(f"{protected}-")
    ]
    assert stepfunctions.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"] == []


def test_chaos_fails_on_a_stack_that_does_not_compensate(cloud, deployment, saga, tmp_path):
    """A stack whose hotel cancel cannot reach its table (a broken deployment) parks the forced booking: the
    chaos test must say that it was not compensated, and exit 1."""
    assembly = cached_assembly(context={"stage": "dev-broken"})
    cloud.deploy(assembly, "BookingSaga-dev-broken")
    assert saga("seed", "--stack", "BookingSaga-dev-broken")[0] == 0
    lambda_ = cloud.client("lambda")
    (cancel,) = [
        function
        for function in lambda_.list_functions()["Functions"]
        if function["FunctionName"].startswith("BookingSaga-dev-broken-") and function["Handler"] == "hotel.cancel"
    ]
    environment = cancel["Environment"]["Variables"] | {"TABLE_NAME": "no-such-table"}
    lambda_.update_function_configuration(FunctionName=cancel["FunctionName"], Environment={"Variables": environment})

    code, out, _ = saga("chaos", "--fail-at", "payment", "--stack", "BookingSaga-dev-broken")

    assert code == 1
    assert "✗ the saga was compensated: ended parked" in out
    assert "✗ nothing stays reserved or charged: still held by flight (RESERVED), hotel (RESERVED)" in out
    assert out.splitlines()[-1] == "Chaos test FAILED"


def test_compensation_chain_is_read_from_the_definition():
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Next": "B", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "UndoA"}]},
            "B": {"Type": "Task", "End": True, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "UndoB"}]},
            "UndoB": {"Type": "Task", "Next": "UndoA"},
            "UndoA": {"Type": "Task", "Next": "Failed"},
            "Failed": {"Type": "Fail"},
        },
    }
    assert compensation_chain(definition, "B") == ["UndoB", "UndoA", "Failed"]
    assert compensation_chain(definition, "A") == ["UndoA", "Failed"]
    assert compensation_chain(definition, "UndoA") == []


def test_seed_loads_a_catalog(saga, deployment, tmp_path):
    catalog = tmp_path / "more.json"
    catalog.write_text(json.dumps({"flights": {"CLI-1": 5}}))

    code, report = run_json(saga, "seed", str(catalog))

    assert (code, report["created"], report["changed"], report["unchanged"]) == (0, 1, 0, 0)
    assert deployment.ledger("flight").available("CLI-1") == 5


def test_graph_is_drawn_from_the_deployed_definition_with_a_path(saga):
    saga("book", "--booking-id", "cli-graph-1", "--fail-at", "payment", "--wait")

    code, plain, _ = saga("graph")
    assert code == 0
    assert plain.startswith("flowchart TD")
    for state in [*FAILED_AT["payment"], "BookingConfirmed", "SendToDeadLetterQueue", "CompensationFailed"]:
        assert f'"{state}"' in plain

    code, highlighted, _ = saga("graph", "cli-graph-1")
    assert code == 0
    assert highlighted != plain
    assert "classDef" in highlighted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "no-such-booking"], "saga: error: no booking no-such-booking in this stack\n"),
        (["history", "no-such-booking"], "saga: error: no booking no-such-booking in this stack\n"),
        (["status", "--api", "no-such-booking"], "saga: error: no booking no-such-booking in this stack\n"),
        (
            ["chaos", "--fail-at", "hotel", "--booking-id", "a b"],
            "saga: error: invalid input: booking_id must be 1-64 characters of A-Z a-z 0-9 _ -\n",
        ),
        (["list", "--stack", "Nope"], "saga: error: stack Nope is not deployed at {endpoint}\n"),
        (["seed", "/no/such/catalog.json"], None),
        (["graph", "--output", "/no/such/dir/saga.mmd"], "saga: error: cannot write /no/such/dir/saga.mmd: "),
    ],
)
def test_errors_are_one_line_and_exit_2(saga, cloud, args, message):
    code, _, err = saga(*args)

    assert code == 2
    assert err.startswith("saga: error: ") and err.count("\n") == 1
    if message:
        assert err.startswith(message.format(endpoint=cloud.endpoint_url))


def test_a_stack_that_is_not_a_saga_is_named(saga, cloud):
    cloud.client("cloudformation").create_stack(
        StackName="Unrelated",
        TemplateBody=json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}),
    )

    code, _, err = saga("list", "--stack", "Unrelated")

    assert code == 2
    assert err.startswith(
        "saga: error: stack Unrelated is not a booking saga: it has no output ApiUrl, BookingContract"
    )


def test_an_unreachable_endpoint_is_named(capsys):
    assert main(["list", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err == (
        "saga: error: cannot reach http://127.0.0.1:9/: is the endpoint up (`saga local up`)?\n"
    )


def test_missing_aws_credentials_are_named(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    assert main(["list", "--region", "eu-west-1"]) == 2
    assert capsys.readouterr().err.startswith("saga: error: no AWS credentials found")
