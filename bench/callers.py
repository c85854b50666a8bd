"""The benchmark's callers: processes that start bookings, one per booking in flight.

The product's callers (the ``saga`` command, scripts, the HTTP API's clients) are processes of their
own. Started from the benchmark's process instead, their requests' CPU (boto3 building, signing and
parsing three requests a booking) would run under the local cloud's GIL and cap the concurrent batches
at that one core. A caller reads one booking a line on stdin and answers with its execution's ARN, or
``{"error": ...}``; ``python -m bench.callers STACK ENDPOINT DYNAMODB_ENDPOINT`` runs one.
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

    def __init__(self, stack: str, endpoint_url: str, dynamodb_endpoint_url: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.callers", stack, endpoint_url, dynamodb_endpoint_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> None:
        self._answer()

    def start(self, document: dict) -> str:
        """Accept the booking and start its saga (``start_booking``) in the caller: the execution's ARN."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(document) + "\n")
        self._process.stdin.flush()
        return self._answer()

    def _answer(self) -> str:
        assert self._process.stdout is not None
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
def callers(count: int, stack: str, endpoint_url: str, dynamodb_endpoint_url: str) -> Iterator[list[Caller]]:
    """``count`` callers of the deployed stack, started side by side and ended on leaving."""
    with ExitStack() as stack_of_callers:
        started = []
        for _ in range(count):
            caller = Caller(stack, endpoint_url, dynamodb_endpoint_url)
            stack_of_callers.callback(caller.close)
            started.append(caller)
        for caller in started:
            caller.ready()
        yield started


def _serve(stack: str, endpoint_url: str, dynamodb_endpoint_url: str) -> None:
    from booking_saga.executions import start_booking
    from saga.deployment import find_deployment

    deployment = find_deployment(stack, endpoint_url=endpoint_url, dynamodb_endpoint_url=dynamodb_endpoint_url)
    stepfunctions, registry = deployment.client("stepfunctions"), deployment.registry()
    arn = deployment.state_machine_arn
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        answer: str | dict
        try:
            answer = start_booking(stepfunctions, registry, arn, json.loads(line)).execution_arn
        except Exception as error:  # told to the benchmark, which stops with it
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
