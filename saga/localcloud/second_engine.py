"""A second, independent Step Functions interpreter for the local cloud: aws-local-stepfunctions, on Node.js 22.

moto's interpreter is the one the local cloud's Step Functions runs; one engine cannot show where it departs
from Step Functions. The second runs the same deployed definition, read from the local cloud (never a copy
kept by hand), against the same deployed functions, tables and queue, so the two can be compared booking by
booking (tests/integration/engines). It runs in one Node process per engine (``second_engine.mjs``), which
hands every Task back here: a Lambda function is invoked through the local cloud's Lambda API, as Step
Functions invokes it, and ``sqs:sendMessage`` really sends. Its executions are not Step Functions
executions: nothing lists them, and only this process knows how they ended.

The definition is run with the few mechanical changes the library's documented gaps need (``prepare``);
tests/integration/engines/KNOWN_DIFFERENCES.md lists each, and why.
"""

import contextlib
import copy
import json
import re
import subprocess
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from booking_saga.executions import Outcome, Step
from saga.deployment import Deployment
from saga.node import ROOT, SUPPORTED_MAJOR, Node, find_node

NAME = "alsf"  # aws-local-stepfunctions, as `saga book --engine` calls it
RUNNER = Path(__file__).with_name("second_engine.mjs")
LIBRARY = ROOT / "node_modules" / "aws-local-stepfunctions" / "package.json"
SEND_MESSAGE = "arn:aws:states:::sqs:sendMessage"
_FUNCTION = re.compile(r"arn:aws[\w-]*:lambda:[\w-]+:\d{12}:function:[\w-]+(:[\w-]+)?")
_FAIL_SCRATCH = "$.second_engine_fail"  # where a split Fail state's Pass leaves the error and cause it computed
_FAIL_SUFFIX = ":Fail"  # the Fail state that follows it, named after it
_STARTUP_SECONDS = 60
_ERROR_LINE = re.compile(r"\w*Error\b")  # how Node's report of an uncaught error begins: "Error [ERR_...]: ..."
# A call lasts as long as the function may run (Lambda allows 15 minutes); a failed one is not retried here, since
# Step Functions' own Retry decides that.
_LAMBDA_CONFIG = Config(read_timeout=960, retries={"total_max_attempts": 1}, max_pool_connections=64)


class SecondEngineUnavailable(RuntimeError):
    """The second engine cannot run here: no Node 22, the library not installed, or not against a local cloud."""


class TaskFailed(Exception):
    """A Task's failure as Step Functions names it: the name Retry and Catch match, and its cause."""

    def __init__(self, error: str, cause: str):
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def usable_node() -> Node:
    """The Node.js the second engine runs on, if this machine has what it needs: Node 22 and the library."""
    node = find_node()
    if node is None or not node.supported:
        found = f"Node.js {node.version} at {node.path}" if node else "no Node.js"
        raise SecondEngineUnavailable(
            f"the second engine needs Node.js {SUPPORTED_MAJOR} (on Linux, `npm ci` installs it); found {found}"
        )
    if not LIBRARY.is_file():
        raise SecondEngineUnavailable("aws-local-stepfunctions is not installed: run `npm ci` (./dev does)")
    return node


def prepare(definition: dict, wait_scale: float = 1.0, timeout_scale: float = 1.0) -> tuple[dict, dict[str, str]]:
    """The definition as the second engine runs it, and the names of the states it added (new name -> the state's).

    Each change stands for something aws-local-stepfunctions 3.0.0 lacks (KNOWN_DIFFERENCES.md): ``$$.State.Name``
    becomes the literal name in each state's Parameters; a Fail state whose ErrorPath or CausePath is an intrinsic
    becomes a Pass that computes them and a Fail that reads them. Retry waits and Task timeouts are scaled as the
    local cloud scales moto's.
    """
    prepared = copy.deepcopy(definition)
    states: dict[str, dict] = prepared["States"]
    added: dict[str, str] = {}
    for name, state in list(states.items()):
        if state["Type"] in ("Parallel", "Map"):
            raise SecondEngineUnavailable(
                f"the second engine cannot run {name}: in a {state['Type']} state's branches the library gives "
                "$$.Execution.Input the branch's input"
            )
        if state["Type"] == "Task":
            _check_resource(name, state["Resource"])
            if "TimeoutSeconds" in state:
                state["TimeoutSeconds"] *= timeout_scale
        if "Parameters" in state:
            state["Parameters"] = _with_state_name(state["Parameters"], name)
        for retrier in state.get("Retry", []):
            retrier["IntervalSeconds"] = retrier.get("IntervalSeconds", 1) * wait_scale
            if "MaxDelaySeconds" in retrier:
                retrier["MaxDelaySeconds"] *= wait_scale
        if state["Type"] == "Fail" and any(_intrinsic(state.get(path)) for path in ("ErrorPath", "CausePath")):
            states[name], states[name + _FAIL_SUFFIX] = _split_fail(state, name + _FAIL_SUFFIX)
            added[name + _FAIL_SUFFIX] = name
    return prepared, added


def _check_resource(state: str, resource: str) -> None:
    if resource != SEND_MESSAGE and not _FUNCTION.fullmatch(resource):
        raise SecondEngineUnavailable(f"the second engine cannot run {state}: it answers no Task of {resource}")


def _with_state_name(template: Any, name: str) -> Any:
    """A payload template with each ``"key.$": "$$.State.Name"`` as ``"key": <name>``."""
    if isinstance(template, list):
        return [_with_state_name(value, name) for value in template]
    if not isinstance(template, dict):
        return template
    inlined = {}
    for key, value in template.items():
        if key.endswith(".$") and value == "$$.State.Name":
            inlined[key.removesuffix(".$")] = name
        else:
            inlined[key] = _with_state_name(value, name)
    return inlined


def _intrinsic(path: object) -> bool:
    return isinstance(path, str) and path.startswith("States.")


def _split_fail(state: dict, fail_name: str) -> tuple[dict, dict]:
    parameters, fail = {}, {"Type": "Fail"}
    for field_name in ("Error", "Cause"):
        if f"{field_name}Path" in state:
            parameters[f"{field_name}.$"] = state[f"{field_name}Path"]
        elif field_name in state:
            parameters[field_name] = state[field_name]
        else:
            continue
        fail[f"{field_name}Path"] = f"{_FAIL_SCRATCH}.{field_name}"
    return {"Type": "Pass", "Parameters": parameters, "ResultPath": _FAIL_SCRATCH, "Next": fail_name}, fail


@dataclass
class Execution:
    """One execution on the second engine; ``wait`` gives its outcome, as ``saga.bookings`` reads one from moto."""

    execution_id: str
    document: dict
    _outcome: Outcome | None = None
    _ended: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = 300) -> Outcome:
        if not self._ended.wait(timeout) or self._outcome is None:
            raise TimeoutError(f"{self.execution_id} did not end within {timeout} s")
        return self._outcome

    def finish(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._ended.set()


class SecondEngine:
    """aws-local-stepfunctions, in one Node process, running a local cloud's deployed state machine.

    ``wait_scale`` and ``timeout_scale``: as the local cloud was started with (``LocalCloud``), so that Retry
    waits and Task timeouts are the same on both engines. Use it as a context manager.
    """

    def __init__(self, deployment: Deployment, wait_scale: float = 1.0, timeout_scale: float = 1.0):
        if not deployment.endpoint_url:
            raise SecondEngineUnavailable("the second engine runs against a local cloud only (an --endpoint-url)")
        node = usable_node()
        self._definition = deployment.definition()
        prepared, self._added = prepare(self._definition, wait_scale, timeout_scale)
        self._state_machine_arn = deployment.state_machine_arn
        self._lambda = deployment.session.client("lambda", endpoint_url=deployment.endpoint_url, config=_LAMBDA_CONFIG)
        self._sqs = deployment.client("sqs")
        self._process = subprocess.Popen(
            [node.path, str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._writing = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._tasks = ThreadPoolExecutor(32, thread_name_prefix="second-engine-task")
        self._ready = threading.Event()
        self._startup: dict = {}
        self._complaints: deque[str] = deque(maxlen=50)  # Node's last lines on stderr, which say why it stopped
        threading.Thread(target=self._read, name="second-engine-reader", daemon=True).start()
        self._complaining = threading.Thread(target=self._read_complaints, name="second-engine-stderr", daemon=True)
        self._complaining.start()
        with contextlib.suppress(BrokenPipeError):  # a Node that exited at once: its stderr says why
            self._send({"definition": self._definition, "prepared": prepared})
        if not self._ready.wait(_STARTUP_SECONDS) or self._startup.get("op") != "ready":
            self.close()
            raise SecondEngineUnavailable(f"the second engine did not start: {self._why_stopped()}")

    def __enter__(self) -> "SecondEngine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the Node process (it exits when its input closes) and the Task threads."""
        if self._process.stdin and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._tasks.shutdown(wait=False, cancel_futures=True)

    def start(self, name: str, document: dict) -> Execution:
        """Start an execution named ``name`` with ``document`` as its input. Its id ($$.Execution.Id, which owns
        what its steps reserve) is the second engine's own: shaped like an execution ARN, under the state
        machine's name plus ``/alsf`` (no Step Functions execution can have it) and unique to this run."""
        machine_name = self._state_machine_arn.rsplit(":", 1)[-1]
        prefix = self._state_machine_arn.replace(":stateMachine:", ":execution:").removesuffix(machine_name)
        execution = Execution(f"{prefix}{machine_name}/{NAME}:{name}:{uuid.uuid4()}", document)
        self._executions[execution.execution_id] = execution
        context = {
            "Execution": {"Id": execution.execution_id, "Name": name},
            "StateMachine": {"Id": self._state_machine_arn, "Name": machine_name},
        }
        self._send({"op": "start", "execution": execution.execution_id, "input": document, "context": context})
        return execution

    def _outcome(self, execution: Execution, end: dict) -> Outcome:
        """How an execution ended, in the shape ``saga.bookings`` reads a Step Functions execution into."""
        return Outcome(
            booking_id=str(execution.document.get("booking_id")),
            execution_arn=execution.execution_id,
            status=end["status"],
            error=end.get("error"),
            cause=end.get("cause"),
            booking=execution.document,
            path=self._path(end.get("events", [])),
        )

    def _path(self, events: list[dict]) -> list[Step]:
        """The states entered, in order, with their attempts and final errors: what ``execution_path`` reads
        from a Step Functions history, from the library's events. A split Fail state shows as the one it was."""
        steps: list[Step] = []
        caught = False
        for event in events:
            when = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
            if event["type"] == "StateEntered":
                if event["state"] not in self._added:
                    state_type = self._definition["States"][event["state"]]["Type"]
                    steps.append(Step(event["state"], state_type, when, attempts=1 if state_type == "Task" else 0))
                    caught = False
            elif steps:
                caught = _record(steps[-1], event, when, caught)
        return steps

    def _send(self, message: dict) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with self._writing:
            assert self._process.stdin is not None  # a pipe
            self._process.stdin.write(line)
            self._process.stdin.flush()

    def _read(self) -> None:
        assert self._process.stdout is not None  # a pipe
        for line in self._process.stdout:
            message = json.loads(line)
            if message["op"] == "call":
                self._tasks.submit(self._answer, message)
            elif message["op"] == "done":
                execution = self._executions.pop(message["execution"])
                execution.finish(self._outcome(execution, message))
            else:
                self._startup = message
                self._ready.set()
        self._ready.set()
        stopped = {"status": "FAILED", "error": "SecondEngine.Stopped", "cause": f"Node stopped: {self._why_stopped()}"}
        for execution in list(self._executions.values()):
            execution.finish(self._outcome(execution, stopped))

    def _read_complaints(self) -> None:
        assert self._process.stderr is not None  # a pipe
        for line in self._process.stderr:
            if line.strip():
                self._complaints.append(line.strip())

    def _why_stopped(self) -> str:
        """In one line: why the runner refused the definition, else its last error on stderr, else its exit status."""
        if "error" in self._startup:
            return "; ".join(line.strip() for line in self._startup["error"].splitlines() if line.strip())
        code = self._process.wait()
        self._complaining.join(5)
        errors = [line for line in self._complaints if _ERROR_LINE.match(line)]
        return (errors or [f"exit status {code}"])[-1]

    def _answer(self, call: dict) -> None:
        """Run one Task as Step Functions would, and hand its result or its named error back to the engine."""
        try:
            answer = {"output": self._run_task(call["resource"], call["input"])}
        except TaskFailed as failure:
            answer = {"error": failure.error, "cause": failure.cause}
        except Exception as error:  # a fault of this bridge: the Task fails, as a Task fails for a service's fault
            answer = {"error": "States.TaskFailed", "cause": f"{type(error).__name__}: {error}"}
        self._send({"op": "answer", "call": call["call"], **answer})

    def _run_task(self, resource: str, parameters: Any) -> Any:
        if resource == SEND_MESSAGE:
            return self._send_message(parameters)
        return self._invoke(resource, parameters)

    def _invoke(self, function_arn: str, payload: Any) -> Any:
        """A Lambda Task: the function's result, or its error by the name Step Functions gives it (the error's
        ``errorType``, ``Lambda.Unknown`` without one, ``Lambda.<exception>`` when the Invoke call itself fails)."""
        try:
            response = self._lambda.invoke(FunctionName=function_arn, Payload=json.dumps(payload))
        except ClientError as error:
            details = error.response["Error"]
            raise TaskFailed(f"Lambda.{details.get('Code')}", details.get("Message", "")) from None
        except BotoCoreError as error:
            raise TaskFailed("Lambda.SdkClientException", str(error)) from None
        body = response["Payload"].read().decode()
        if "FunctionError" in response:
            raise TaskFailed(_error_type(body), body)  # the cause: the function's error document, as it came
        return json.loads(body) if body else None

    def _send_message(self, parameters: dict) -> dict:
        """``sqs:sendMessage``: a message body that is not a string is sent as its JSON, as Step Functions does."""
        body = parameters["MessageBody"]
        try:
            sent = self._sqs.send_message(
                QueueUrl=parameters["QueueUrl"], MessageBody=body if isinstance(body, str) else json.dumps(body)
            )
        except ClientError as error:
            details = error.response["Error"]
            raise TaskFailed(f"SQS.{details.get('Code')}", details.get("Message", "")) from None
        return {key: value for key, value in sent.items() if key != "ResponseMetadata"}


def _record(step: Step, event: dict, when: datetime, caught: bool) -> bool:
    """One event of the state the execution is in, recorded on its step; whether the step's failure is caught."""
    kind = event["type"]
    if kind == "StateRetried":
        step.attempts += 1
    elif kind in ("StateFailed", "ExecutionFailed"):
        step.error, step.cause = event.get("error"), _text(event.get("cause"))
        if kind == "ExecutionFailed":
            step.exited = when
        return False
    elif kind == "StateCaught":
        return True
    elif kind == "StateExited":
        step.exited = when
        if not caught:  # a retry succeeded: the failure before it is not how this state ended
            step.error = step.cause = None
    return caught


def _error_type(body: str) -> str:
    try:
        error_type = json.loads(body)["errorType"]
    except (ValueError, KeyError, TypeError):
        return "Lambda.Unknown"
    return error_type if isinstance(error_type, str) and error_type else "Lambda.Unknown"


def _text(cause: object) -> str | None:
    return cause if cause is None or isinstance(cause, str) else json.dumps(cause)
