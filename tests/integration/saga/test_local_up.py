"""`saga local up` as users run it: a separate process serving an endpoint any AWS client can use."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from saga.api import BookingApi
from saga.cli import main
from tests.factories import booking

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 120


class Server:
    """`python -m saga local up --json` in a child process; the first stdout line says where it listens."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "saga", "local", "up", "--json", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    def started(self) -> dict:
        line = _readline(self.process, START_TIMEOUT)
        assert line, f"local up exited {self.process.poll()}: {''.join(self.stderr)}"
        return json.loads(line)

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def _readline(process: subprocess.Popen, timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


@pytest.fixture(scope="module")
def server():
    server = Server("--port", "0", "--wait-scale", "0.01")
    try:
        server.info = server.started()
        yield server
    finally:
        server.stop()


def client(server, service: str):
    return boto3.client(
        service,
        endpoint_url=server.info["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def test_it_listens_on_localhost_only_and_reports_the_stack_outputs(server):
    assert server.info["endpoint_url"].startswith("http://127.0.0.1:")
    assert set(server.info["outputs"]) == {
        "StateMachineArn",
        "FlightsTable",
        "HotelsTable",
        "PaymentsTable",
        "BookingsTable",
        "DeadLetterQueueUrl",
        "BookingContract",
        "ApiUrl",
        "ReconcilerFunction",
        "ReconcilerFailuresUrl",
    }
    assert server.info["api_url"].startswith(server.info["endpoint_url"] + "/_aws/execute-api/")


def test_it_serves_the_booking_http_api_to_signed_requests(server):
    api = BookingApi(server.info["api_url"], boto3.Session("x", "x", region_name="us-east-1"))

    created = api.create(booking("up-api-1"))
    assert (created.status, created.body["booking_id"]) == (202, "up-api-1")
    assert api.get("up-api-1").status == 200
    assert api.get("up-api-nope").status == 404
    assert api.create({"booking_id": "up-api-2"}).status == 400
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(server.info["api_url"] + "bookings/up-api-1", timeout=30)


def test_boto3_with_endpoint_url_sees_the_deployed_stack_and_the_sample_catalog(server):
    stack = client(server, "cloudformation").describe_stacks(StackName="BookingSaga")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    item = client(server, "dynamodb").get_item(  # a flight no test here books: the API's booking may take NH101's
        TableName=server.info["outputs"]["FlightsTable"], Key={"pk": {"S": "inventory#JL5"}}
    )["Item"]
    assert item["available"] == {"N": "240"}


def test_saga_commands_drive_it_through_aws_endpoint_url(server, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.info["endpoint_url"])

    assert main(["book", "--booking-id", "up-ok-1", "--wait"]) == 0
    for step in ("flight", "hotel", "payment"):
        assert main(["chaos", "--fail-at", step]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main(["graph", "up-ok-1"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    assert main(["status", "up-ok-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "confirmed"


def test_a_plain_boto3_execution_runs_the_real_handlers(server):
    stepfunctions = client(server, "stepfunctions")
    booking = {
        "booking_id": "up-boto3-1",
        "customer_id": "c-1",
        "flight": {"flight_id": "KYOTO-NONE", "seats": 1},
        "hotel": {"hotel_id": "OSAKA-BAY", "rooms": 1},
        "payment": {"amount": 100, "currency": "JPY"},
    }
    arn = stepfunctions.start_execution(
        stateMachineArn=server.info["outputs"]["StateMachineArn"], name="up-boto3-1", input=json.dumps(booking)
    )["executionArn"]
    waiter_deadline = 300
    while (execution := stepfunctions.describe_execution(executionArn=arn))["status"] == "RUNNING":
        waiter_deadline -= 1
        assert waiter_deadline, "execution did not finish"
        threading.Event().wait(0.1)
    assert (execution["status"], execution["error"]) == ("FAILED", "SoldOut")
    assert json.loads(execution["cause"])["errorMessage"] == "ReserveFlight: unknown flight KYOTO-NONE"


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_can_use_it(server, tmp_path):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": server.info["endpoint_url"],
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        ["aws", "stepfunctions", "list-state-machines", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    machines = json.loads(result.stdout)["stateMachines"]
    assert [machine["stateMachineArn"] for machine in machines] == [server.info["outputs"]["StateMachineArn"]]


def test_a_taken_port_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server("--port", str(port))
        code = server.process.wait(timeout=START_TIMEOUT)
    server.process.stderr.close()
    message = [line for line in "".join(server.stderr).splitlines() if line.startswith("saga: error:")]
    assert code == 2
    assert message == [
        f"saga: error: cannot start the local cloud on 127.0.0.1:{port}: the port is taken; "
        "pick another port, or 0 for any free one"
    ]
    assert "Traceback" not in "".join(server.stderr)


def test_ctrl_c_stops_it_cleanly():
    server = Server("--port", "0")
    endpoint = server.started()["endpoint_url"]

    assert server.stop(signal.SIGINT) == 0
    assert "Stopping the local cloud." in "".join(server.stderr)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])), timeout=2):
        pass
