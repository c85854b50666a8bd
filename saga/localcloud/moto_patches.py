"""Every change the local cloud makes to moto's private code, in one place.

moto 5.2.5 can deploy a CDK template and interpret Amazon States Language, but it
has no way to run Lambda code without Docker, it leaves CloudFormation's state
machines in a backend that does not execute, and its interpreter really sleeps
through retry waits and task timeouts. Each patch below names the moto internal
it replaces and why. They all rely on moto's private layout, so moto is pinned
exactly; ``applied()`` installs them for the life of one local cloud and puts
everything back afterwards.
"""

import functools
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

# Runs a deployed function: (moto's LambdaFunction, request body, request headers, response headers) -> payload.
Invoker = Callable[[Any, Any, Any, dict], bytes]
# Told each finished execution's ARN, once its status, output and stop date are recorded.
ExecutionListener = Callable[[str], None]

_active = threading.Lock()


class MotoServer(ThreadedMotoServer):
    """moto's threaded server, except that a failed bind is reported instead of hanging ``start()``.

    ``ThreadedMotoServer.start`` waits for a "ready" event that ``_server_entry``
    only sets after binding; werkzeug answers a taken port with ``sys.exit(1)``
    inside the server thread, so ``start()`` would block forever.
    """

    bind_failed = False

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except (OSError, SystemExit):
            self.bind_failed = True
            self._server_ready_event.set()


@contextmanager
def applied(
    invoker: Invoker,
    wait_scale: float,
    timeout_scale: float,
    *,
    cache_definitions: bool = True,
    on_execution_end: ExecutionListener | None = None,
) -> Iterator[None]:
    """Install every patch; only one local cloud per process, since moto's backends are process-wide.

    ``cache_definitions=False`` leaves moto parsing the definition on every execution, and
    ``on_execution_end`` hears of each finished execution: both serve the benchmark (``python -m bench``).
    """
    if not _active.acquire(blocking=False):
        raise RuntimeError("a LocalCloud is already running in this process (moto's state is process-wide)")
    try:
        with ExitStack() as undo:
            _run_lambdas_with(invoker, undo)
            _execute_cloudformation_state_machines(undo)
            _scale_time(wait_scale, timeout_scale, undo)
            if cache_definitions:
                _cache_parsed_definitions(undo)
            if on_execution_end is not None:
                _report_execution_ends(on_execution_end, undo)
            yield
    finally:
        _active.release()


def _replace(undo: ExitStack, owner: Any, name: str, value: Any) -> None:
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, value)
    undo.callback(setattr, owner, name, original)


def _run_lambdas_with(invoker: Invoker, undo: ExitStack) -> None:
    """``LambdaSimpleBackend.invoke`` (the Docker-less backend) only echoes its input; run the real code instead.

    The function is looked up as moto does, so an unknown name or ARN still fails
    with ResourceNotFoundException.
    """

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        function = self.get_function(function_name, qualifier)
        return invoker(function, body, headers, response_headers)

    _replace(undo, LambdaSimpleBackend, "invoke", invoke)


def _execute_cloudformation_state_machines(undo: ExitStack) -> None:
    """CloudFormation's ``AWS::StepFunctions::StateMachine`` handlers create the machine in
    ``moto.stepfunctions.models.stepfunctions_backends``, which stores but never runs it; the
    Step Functions API (with ``execute_state_machine``) serves ``stepfunctions_parser_backends``.
    Pointing the module global at the parser backends makes the deployed machine the one the
    API starts and interprets (and validates its definition at create time)."""
    _replace(undo, sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)


def _scale_time(wait_scale: float, timeout_scale: float, undo: ExitStack) -> None:
    """Retry waits (``time.sleep`` in ``retrier_decl``) and task ``TimeoutSeconds`` really wait;
    scaling them keeps the order of events and makes runs fast."""
    if wait_scale != 1.0:
        scaled_time = types.SimpleNamespace(**vars(time))
        scaled_time.sleep = lambda seconds: time.sleep(seconds * wait_scale)
        _replace(undo, retrier_decl, "time", scaled_time)
    if timeout_scale != 1.0:

        def _eval_seconds(self, env):
            return self.timeout_seconds * timeout_scale

        _replace(undo, TimeoutSeconds, "_eval_seconds", _eval_seconds)


def _cache_parsed_definitions(undo: ExitStack) -> None:
    """``AmazonStateLanguageParser.parse`` (ANTLR) runs on create and again on every execution,
    about half of an execution's time. The parsed program is reusable: moto itself shares one
    program between Map iterations and Parallel branches, and per-execution state lives in the
    execution's ``Environment``. The one lazy per-component value, ``heap_key``, is filled in
    before the program is shared, so concurrent executions cannot race on it."""
    original = AmazonStateLanguageParser.__dict__["parse"]

    @functools.lru_cache(maxsize=64)
    def parse(definition: str):
        program, tree = original.__func__(definition)
        _fill_heap_keys(program, set())
        return program, tree

    _replace(undo, AmazonStateLanguageParser, "parse", staticmethod(parse))


def _report_execution_ends(listener: ExecutionListener, undo: ExitStack) -> None:
    """``BaseExecutionWorkerCommunication.terminated`` is where the interpreter's thread records an
    execution's end; telling a listener there spares it polling ``DescribeExecution``, whose cost and
    granularity would otherwise be part of what a benchmark measures."""
    original = BaseExecutionWorkerCommunication.__dict__["terminated"]

    def terminated(self) -> None:
        original(self)
        listener(self.execution.exec_arn)

    _replace(undo, BaseExecutionWorkerCommunication, "terminated", terminated)


def _fill_heap_keys(node: Any, seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, EvalComponent):
        _ = node.heap_key
    if isinstance(node, list | tuple | set | frozenset):
        children = node
    elif isinstance(node, dict):
        children = node.values()
    elif hasattr(node, "__dict__") and type(node).__module__.startswith("moto.stepfunctions.parser.asl"):
        children = vars(node).values()
    else:
        return
    for child in children:
        _fill_heap_keys(child, seen)


def _serialize_dynamodb(undo: ExitStack) -> None:
    """moto's DynamoDB is not safe under concurrent requests: ``transact_write_items`` deep-copies
    each table first and, when a condition fails, restores that copy, wiping out writes other
    requests committed meanwhile (and the copy itself can fail while another thread writes).
    DynamoDB serializes transactions against every other write; one lock around each DynamoDB
    request does the same here, at a cost of microseconds per request."""
    original = DynamoHandler.__dict__["call_action"]
    lock = threading.Lock()

    @functools.wraps(original)
    def call_action(self):
        with lock:
            return original(self)

    _replace(undo, DynamoHandler, "call_action", call_action)
