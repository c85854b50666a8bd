"""The benchmark's callers: processes that start bookings, one per booking in flight.

The product's callers (the ``saga`` command, scripts, the HTTP API's clients) are processes of their
own. Started from the benchmark's process instead, their requests' CPU (boto3 building, signing and
parsing three requests a booking) would run under the local cloud's GIL and cap the concurrent batches
at that one core. A caller reads one request a line on stdin, a deployment to use (``{"deployment":
[stack, endpoint, DynamoDB endpoint]}``) or a booking to start (``{"booking": ...}``), and answers each
with ``"ready"`` or the execution's ARN, or with ``{"error": ...}``. ``python -m bench.callers`` runs one.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Caller:
    """One caller process, used by one thread at a time."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.callers"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def use(self, stack: str, endpoint_url: str, dynamodb_endpoint_url: str) -> None:
        """Start the next bookings on this deployment (each benchmark session deploys its own)."""
        self._ask({"deployment": [stack, endpoint_url, dynamodb_endpoint_url]})

    def start(self, document: dict) -> str:
        """Accept the booking and start its saga (``start_booking``) in the caller: the execution's ARN."""
        return self._ask({"booking": document})

    def _ask(self, request: dict) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"a benchmark caller ended (exit code {self._process.wait()})")
        answer = json.loads(line)
        if isinstance(answer, dict):
            raise RuntimeError(f"a benchmark caller failed: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


@contextmanager
def callers(count: int) -> Iterator[list[Caller]]:
    """``count`` callers, started side by side (each imports boto3) and ended on leaving."""
    with ExitStack() as running:
        started = []
        for _ in range(count):
            caller = Caller()
            running.callback(caller.close)
            started.append(caller)
        yield started


def _serve() -> None:
    from booking_saga.executions import start_booking
    from saga.deployment import Deployment, find_deployment

    deployment: Deployment | None = None
    for line in sys.stdin:
        request = json.loads(line)
        answer: str | dict
        try:
            if "deployment" in request:
                stack, endpoint_url, dynamodb_endpoint_url = request["deployment"]
                deployment = find_deployment(
                    stack, endpoint_url=endpoint_url, dynamodb_endpoint_url=dynamodb_endpoint_url
                )
                answer = "ready"
            elif deployment is None:
                raise RuntimeError("no deployment to start bookings on: send one first")
            else:
                stepfunctions, arn = deployment.client("stepfunctions"), deployment.state_machine_arn
                answer = start_booking(stepfunctions, deployment.registry(), arn, request["booking"]).execution_arn
        except Exception as error:  # told to the benchmark, which stops with it
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve()
