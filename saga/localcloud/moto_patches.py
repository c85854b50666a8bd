"""Every change the local cloud makes to moto's private code, in one place.

moto 5.2.5 can deploy a CDK template and interpret Amazon States Language, but it
has no way to run Lambda code without Docker, it leaves CloudFormation's state
machines in a backend that does not execute, its interpreter really sleeps
through retry waits and task timeouts, its DynamoDB is neither safe nor fast
under concurrent requests, its CloudFormation skips API Gateway stages, and its
SSM refuses the public parameters AWS publishes (``put_public_parameter``
writes one). Each patch below names the moto internal it replaces
and why. They all rely on moto's private layout, so moto is pinned exactly;
``applied()`` installs them for the life of one local cloud and puts everything
back afterwards.

Where moto and AWS's documentation disagree, the local cloud does what AWS
documents, each with a probe in tests/integration/saga/localcloud/test_aws_parity.py:

- States.Runtime and States.DataLimitExceeded are neither retried nor caught
  (``_make_runtime_and_data_limit_errors_uncatchable``);
- the 256 KiB payload quota is counted as compact JSON in UTF-8, up to and
  including the limit (``_measure_payloads_as_utf8``), and covers a state's
  input after InputPath and after Parameters too (``_limit_state_input_size``);
- StopExecution ends an execution at once, ABORTED with the caller's error and
  cause (``_stop_executions_at_once``), and a state machine's TimeoutSeconds ends
  it TIMED_OUT, scaled like the other timeouts (``_time_out_executions``): the task
  in flight is abandoned (``_abandon_tasks_of_ended_executions``), a retry wait
  cut short (``_scale_time``), a late failure cannot turn the status into FAILED
  (``_keep_ended_executions_ended``) and nothing follows the closing event in the
  history (``_close_histories_at_their_end``). ``time_out_execution`` takes the
  timeout path early, for tests;
- a Standard execution's start and end put "Step Functions Execution Status
  Change" events on the default event bus (``_publish_execution_status_changes``);
  EventBridge skips disabled rules and invokes Lambda targets asynchronously, with
  the target's RetryPolicy and dead-letter queue for deliveries that fail
  (``_deliver_events_to_lambda_functions``); a function keeps its DeadLetterConfig
  (``_keep_function_dead_letter_configs``), where the Lambda runtime sends an
  asynchronous event whose attempts all failed;
- DynamoDB refuses to write an item while a TransactWriteItems is in progress on it: another transaction is
  cancelled with TransactionConflict on that item, and a PutItem, UpdateItem or DeleteItem fails with
  TransactionConflictException; neither writes anything (``_conflict_with_transactions_in_progress``);
- DynamoDB refuses a ConditionExpression or a Query's FilterExpression it cannot parse with ValidationException
  (HTTP 400), writing nothing (``_refuse_unparsable_expressions``), where moto's server answered 500, which SDKs
  retry;
- CloudFormation's Ref of an ``AWS::Events::EventBus`` is its name
  (``_refer_to_event_buses_by_name``), so rules land on the stack's bus, and
  ``AWS::Lambda::EventInvokeConfig`` is deployed (``_deploy_event_invoke_configs``):
  the Lambda runtime sends its on-failure destination (an EventBridge bus) the
  record of an asynchronous invocation whose attempts all failed;
- two definitions parsed at once (executions starting together) no longer share moto's parser state
  (``_parse_definitions_apart``), which made one of them fail to start;
- the server keeps a client's connection open between requests (``KeepAliveRequestHandler``).

For tests, ``_fail_sqs_sends`` makes SendMessage requests to a queue fail as in
an SQS outage (``LocalCloud.fail_sends``).

DynamoDB is served by a process of its own (``table_process``), forked with these patches in place; in the local
cloud's own process ``_mirror_tables_in`` creates and deletes each table CloudFormation creates and deletes there
too. To keep both
processes small, ``_forget_models_read_for_region_lists`` lets go of the botocore models moto reads only to list a
service's regions.

One more change has to run before moto is imported, so it lives in the package's ``__init__``: moto's EC2 region
list (which its CloudFormation imports) is read with one botocore session (``_import_moto_regions_once``).
"""

import copy
import datetime
import functools
import json
import logging
import threading
import time
import types
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any, NamedTuple, cast

import boto3
from botocore.awsrequest import AWSResponse, create_request_object
from botocore.config import Config
from botocore.endpoint import convert_to_response_dict
from botocore.model import OperationModel
from botocore.parsers import create_parser
from moto import backends
from moto.apigateway.models import apigateway_backends
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.cloudformation.models import Stack as CloudFormationStack
from moto.cloudformation.parsing import get_model_map
from moto.core import responses as moto_responses
from moto.core.base_backend import AccountSpecificBackend, BaseBackend
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.core.serialize import DEFAULT_ALIAS_PROVIDERS, AttributePicker, TimestampSerializer
from moto.core.utils import iso_8601_datetime_without_milliseconds, method_names_from_class, utcfromtimestamp, utcnow
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    DynamodbException,
    MockValidationException,
    TransactionCanceledException,
)
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import EventBus, EventTemplateParser, Rule, events_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from moto.sqs.exceptions import SQSException
from moto.sqs.models import sqs_backends
from moto.sqs.responses import SQSResponse
from moto.ssm.models import Parameter, ssm_backends
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions.parser.api import ExecutionStatus, HistoryEventType, StateMachineType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.catch.catch_outcome import CatchOutcome
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.parargs import Parargs
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.retry.retry_outcome import RetryOutcome
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError, TimeoutSeconds
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped, ProgramTimedOut
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
from moto.stepfunctions.parser.models import stepfunctions_parser_backends
from moto.stepfunctions.parser.quotas import MAX_STATE_SIZE_UTF8_BYTES
from moto.stepfunctions.parser.utils import TMP_THREADS
from moto.stepfunctions.responses import StepFunctionResponse
from moto.utilities.arns import parse_arn
from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import make_server
from werkzeug.wsgi import LimitedStream

# Runs a deployed function: (moto's LambdaFunction, request body, request headers, response headers) -> payload.
Invoker = Callable[[Any, Any, Any, dict], bytes]
# (a Table classmethod of moto's CloudFormation, resource name, resolved template resource, account, region).
TableMirror = Callable[[str, str, dict, str, str], None]
# Told each finished execution's ARN, once its status, output and stop date are recorded.
ExecutionListener = Callable[[str], None]

# Errors Step Functions neither retries nor catches, whatever a state's Retry or Catch names: the execution fails.
UNCATCHABLE_ERRORS = frozenset({"States.Runtime", "States.DataLimitExceeded"})

# History events that close an execution: nothing is recorded after one of them.
_CLOSING_EVENTS = frozenset(
    {
        HistoryEventType.ExecutionSucceeded,
        HistoryEventType.ExecutionFailed,
        HistoryEventType.ExecutionAborted,
        HistoryEventType.ExecutionTimedOut,
    }
)
# How long a stop or a timeout waits for the interpreter to start, or to close the history: far more than it takes.
_INTERPRETER_WAIT_SECONDS = 10
# How often a state waiting for its task looks whether the execution has ended meanwhile.
_ENDED_EXECUTION_POLL_SECONDS = 0.02

_active = threading.Lock()
_ALREADY_RUNNING = "a LocalCloud is already running in this process (moto's state is process-wide)"

_log = logging.getLogger(__name__)


def refuse_a_second_cloud() -> None:
    """Raise RuntimeError if a local cloud is running in this process: checked before anything is started for one."""
    if _active.locked():
        raise RuntimeError(_ALREADY_RUNNING)


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection open for the client's next request, as AWS does.

    werkzeug's development server answers every request with "Connection: close", since http.server cannot
    tell where a body the app left unread ends: every client (the functions' SDKs, the interpreter's, the
    tests') opened a connection per request, and the server started a thread for each, about a sixth of a
    booking's time. Here the app reads a body with a Content-Length through a stream that ends with it, and
    whatever it left is read after the response (werkzeug's own drain then reads nothing of the next
    request), so the connection is ready for the next one; a chunked body still closes it. Responses go out
    without waiting for the client's acknowledgement (TCP_NODELAY), which keep-alive would otherwise stall."""

    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        connection = self.rfile
        length = self.headers.get("Content-Length", "0")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not length.isdigit():
            super().run_wsgi()  # the connection closes after it
            return
        body = LimitedStream(cast(IO[bytes], connection), int(length))
        self.rfile = cast(Any, body)
        try:
            super().run_wsgi()
            body.exhaust()
        except (OSError, ClientDisconnected):
            self.close_connection = True
        finally:
            self.rfile = connection

    def send_header(self, keyword: str, value: str) -> None:
        if (keyword.lower(), value.lower()) == ("connection", "close") and isinstance(self.rfile, LimitedStream):
            return
        super().send_header(keyword, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """werkzeug formats a line per request (the path decoded, the date) before handing it to its logger, which
        the local cloud keeps quiet: it is formatted only for a logger that writes it."""
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            super().log_request(code, size)


class MotoServer(ThreadedMotoServer):
    """moto's threaded server, except that a failed bind is reported instead of hanging ``start()``,
    and that ``middleware`` (a WSGI app factory taking moto's app) may answer some requests itself.

    ``ThreadedMotoServer.start`` waits for a "ready" event that ``_server_entry``
    only sets after binding; werkzeug answers a taken port with ``sys.exit(1)``
    inside the server thread, so ``start()`` would block forever.
    """

    bind_failed = False

    def __init__(self, *args, middleware: Callable[[Any], Any] = lambda app: app, **kwargs):
        super().__init__(*args, **kwargs)
        self._middleware = middleware

    def _server_entry(self) -> None:
        app = self._middleware(DomainDispatcherApplication(create_backend_app))
        try:
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler)
        except (OSError, SystemExit):
            self.bind_failed = True
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        self._server.serve_forever()


class SendFaults:
    """The SQS outages tests ask for (``LocalCloud.fail_sends``): how many of the next SendMessage requests to
    each queue fail. Queues are told apart by name, the last part of their URL, as moto finds them."""

    def __init__(self) -> None:
        self._remaining: dict[str, int] = {}
        self._lock = threading.Lock()

    def fail(self, queue_url: str, count: int) -> None:
        with self._lock:
            self._remaining[queue_url.rstrip("/").rsplit("/", 1)[-1]] = count

    def clear(self) -> None:
        with self._lock:
            self._remaining.clear()

    def take(self, queue_name: str) -> bool:
        """Whether this request to the queue is one that fails; it counts as one."""
        with self._lock:
            left = self._remaining.get(queue_name, 0)
            if left > 0:
                self._remaining[queue_name] = left - 1
            return left > 0


class TransactionHolds:
    """The items of the DynamoDB transactions in progress, and the requests refused because of them.

    On DynamoDB a TransactWriteItems is in progress for some milliseconds, and meanwhile no other transaction or
    single-item write may touch its items. The local cloud applies each DynamoDB request alone
    (``_serialize_dynamodb``), so without this no two could ever overlap: here a transaction holds its items for
    ``window`` seconds once applied, and answers when the window ends (a GetItem meanwhile sees its writes, as
    DynamoDB allows). ``window`` 0 means no window, and no conflicts; it may change at any time."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._until: dict[tuple[str, str, str, str], float] = {}  # item -> when the transaction holding it answers
        self._refused: Counter[str] = Counter()
        self._answering = threading.local()  # the request thread's own transaction: when it may answer
        self._lock = threading.Lock()

    @property
    def window(self) -> float:
        return self._window

    @window.setter
    def window(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a transaction's window cannot be negative")
        self._window = seconds

    def held(self, items: list[tuple[str, str, str, str]]) -> list[bool]:
        """Whether a transaction in progress holds each item."""
        now = time.monotonic()
        with self._lock:
            return [self._until.get(item, 0.0) > now for item in items]

    def hold(self, items: list[tuple[str, str, str, str]]) -> None:
        """The transaction this request thread just applied holds its items until its window ends."""
        until = time.monotonic() + self.window
        with self._lock:
            if len(self._until) > 10_000:  # forget the windows that ended long ago
                self._until = {item: end for item, end in self._until.items() if end > until - self.window}
            for item in items:
                self._until[item] = until
        self._answering.until = until

    def refuse(self, operation: str) -> None:
        with self._lock:
            self._refused[operation] += 1

    def refused(self) -> dict[str, int]:
        """The requests refused so far because a transaction was in progress on their items, by operation."""
        with self._lock:
            return dict(self._refused)

    def answer_when_done(self) -> None:
        """Wait, outside every lock, until the window of this request thread's transaction (if any) has ended."""
        until, self._answering.until = getattr(self._answering, "until", None), None
        if until is not None and (left := until - time.monotonic()) > 0:
            time.sleep(left)


class BackgroundWork:
    """What the local cloud goes on doing after it answered a request: EventBridge's deliveries to functions and
    Lambda's asynchronous invocations, their retries' waits included. Counted, so that ``LocalCloud.wait_until_idle``
    knows when everything a request set off has landed."""

    def __init__(self) -> None:
        self._running = 0
        self._changed = threading.Condition()

    def start(self, work: Callable[..., None], *args: Any) -> None:
        """Run ``work(*args)`` in a thread of its own; it counts as running from now until it returns."""
        with self._changed:
            self._running += 1

        def run() -> None:
            try:
                work(*args)
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()

        threading.Thread(target=run, daemon=True).start()

    def wait_until_done(self, timeout: float) -> bool:
        """Whether all of it ended within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._running == 0, timeout)


@contextmanager
def applied(
    invoker: Invoker,
    wait_scale: float,
    timeout_scale: float,
    send_faults: SendFaults,
    transactions: "TransactionHolds",
    background: BackgroundWork,
    *,
    cache_definitions: bool = True,
    reuse_clients: bool = True,
    on_execution_end: ExecutionListener | None = None,
    mirror_tables_in: TableMirror | None = None,
) -> Iterator[None]:
    """Install every patch; only one local cloud per process, since moto's backends are process-wide.

    ``send_faults`` holds the SQS sends the local cloud's ``fail_sends`` asks to fail, ``transactions`` the
    items of DynamoDB transactions in progress (``LocalCloud(transaction_window=...)``), and ``background`` runs
    EventBridge's deliveries to functions.

    ``cache_definitions=False`` leaves moto parsing the definition on every execution and each JSONPath on
    every use,
    ``reuse_clients=False`` leaves its interpreter making a boto3 client per call, each calling over HTTP, and
    ``on_execution_end`` hears of each finished execution: all three serve the benchmark (``python -m bench``).
    ``mirror_tables_in`` creates and deletes each table CloudFormation creates and deletes in the process that
    serves DynamoDB as well (``table_process``).
    """
    if not _active.acquire(blocking=False):
        raise RuntimeError(_ALREADY_RUNNING)
    try:
        with ExitStack() as undo:
            _run_lambdas_with(invoker, undo)
            _execute_cloudformation_state_machines(undo)
            _deploy_api_gateway_stages(undo)
            _scale_time(wait_scale, timeout_scale, undo)
            _time_out_executions(timeout_scale, undo)
            _stop_executions_at_once(undo)
            _keep_ended_executions_ended(undo)
            _close_histories_at_their_end(undo)
            _abandon_tasks_of_ended_executions(undo)
            _publish_execution_status_changes(undo)
            _deliver_events_to_lambda_functions(wait_scale, background, undo)
            _keep_function_dead_letter_configs(undo)
            _refer_to_event_buses_by_name(undo)
            _deploy_event_invoke_configs(undo)
            _fail_sqs_sends(send_faults, undo)
            _serialize_dynamodb(undo)
            _transact_without_copying_tables(undo)
            _query_one_partition(undo)
            _conflict_with_transactions_in_progress(transactions, undo)
            _refuse_unparsable_expressions(undo)
            _parse_definitions_apart(undo)
            _look_up_moto_once(undo)
            _take_shortcuts(undo)
            _make_runtime_and_data_limit_errors_uncatchable(undo)
            _measure_payloads_as_utf8(undo)
            _limit_state_input_size(undo)
            if cache_definitions:
                _cache_parsed_definitions(undo)
                _cache_parsed_json_paths(undo)
            if reuse_clients:
                _reuse_interpreter_clients(undo)
            if on_execution_end is not None:
                _report_execution_ends(on_execution_end, undo)
            if mirror_tables_in is not None:
                _mirror_tables_in(mirror_tables_in, undo)
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


class _ApiStage(CloudFormationModel):
    """``AWS::ApiGateway::Stage``, which moto's CloudFormation skips: a REST API's URL then names
    stage "None" and the API has no stage to serve. Created in moto's API Gateway backend instead."""

    def __init__(self, stage_name: str):
        self.stage_name = stage_name

    @property
    def physical_resource_id(self) -> str:
        return self.stage_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        apigateway_backends[account_id][region_name].create_stage(
            properties["RestApiId"],
            properties["StageName"],
            properties["DeploymentId"],
            tracing_enabled=properties.get("TracingEnabled"),
        )
        return cls(properties["StageName"])


def _deploy_api_gateway_stages(undo: ExitStack) -> None:
    """moto's CloudFormation finds resource types in ``get_model_map()`` (a cached dict): add the stage."""
    models = get_model_map()
    models[_ApiStage.cloudformation_type()] = _ApiStage  # type: ignore[type-abstract]  # moto's map holds classes
    undo.callback(models.pop, _ApiStage.cloudformation_type())


def _refer_to_event_buses_by_name(undo: ExitStack) -> None:
    """CloudFormation's ``Ref`` of an ``AWS::Events::EventBus`` returns the bus's name (aws-resource-events-eventbus,
    Return values); moto's ``EventBus`` has no ``physical_resource_id``, so a rule's ``EventBusName: {Ref: Bus}``
    receives the model object and moto's PutRule fails with an AttributeError."""
    EventBus.physical_resource_id = property(lambda bus: bus.name)  # type: ignore[attr-defined]
    undo.callback(delattr, EventBus, "physical_resource_id")


class _EventInvokeConfig(CloudFormationModel):
    """``AWS::Lambda::EventInvokeConfig``, which moto's CloudFormation skips (its Lambda API has
    PutFunctionEventInvokeConfig): the function's destinations and retry limits for asynchronous invocations."""

    def __init__(self, function_name: str):
        self.function_name = function_name

    @property
    def physical_resource_id(self) -> str:
        return self.function_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        config = {
            key: properties[key]
            for key in ("DestinationConfig", "MaximumRetryAttempts", "MaximumEventAgeInSeconds")
            if key in properties
        }
        get_lambda_backend(account_id, region_name).put_function_event_invoke_config(properties["FunctionName"], config)
        return cls(properties["FunctionName"])


def _deploy_event_invoke_configs(undo: ExitStack) -> None:
    """Add ``AWS::Lambda::EventInvokeConfig`` to moto's CloudFormation resource types (as the API stage above)."""
    models = get_model_map()
    models[_EventInvokeConfig.cloudformation_type()] = _EventInvokeConfig  # type: ignore[type-abstract]
    undo.callback(models.pop, _EventInvokeConfig.cloudformation_type())


def _scale_time(wait_scale: float, timeout_scale: float, undo: ExitStack) -> None:
    """Retry waits (``time.sleep`` in ``retrier_decl``) and task ``TimeoutSeconds`` really wait;
    scaling them keeps the order of events and makes runs fast.

    A retry wait also ends when its execution does (StopExecution, the execution's own timeout), so the
    execution closes at once as on Step Functions instead of after the interval: ``RetrierDecl._eval_body``
    notes its environment for the wait, which waits on that environment's ``program_state_event``, as moto's
    Wait state does (``set_stop`` and ``set_timed_out`` pulse it)."""
    retrying = threading.local()
    eval_retrier = retrier_decl.RetrierDecl.__dict__["_eval_body"]

    def _eval_body(self, env) -> None:
        retrying.env = env
        eval_retrier(self, env)

    def sleep(seconds: float) -> None:
        env = retrying.env
        deadline = time.monotonic() + seconds * wait_scale
        while env.is_running() and (left := deadline - time.monotonic()) > 0:
            env.program_state_event.wait(left)

    retry_time = types.SimpleNamespace(**vars(time))
    retry_time.sleep = sleep
    _replace(undo, retrier_decl.RetrierDecl, "_eval_body", _eval_body)
    _replace(undo, retrier_decl, "time", retry_time)
    if timeout_scale != 1.0:

        def _eval_seconds(self, env):
            return self.timeout_seconds * timeout_scale

        _replace(undo, TimeoutSeconds, "_eval_seconds", _eval_seconds)


def _stop_executions_at_once(undo: ExitStack) -> None:
    """StopExecution ends an execution at once: DescribeExecution then says ABORTED, with the error and cause
    the caller gave, and the response carries the stopDate. moto's ``StepFunctionResponse.stop_execution``
    drops the error and cause, and the parser's ``Execution.stop`` only signals the interpreter, so the status
    changed when the state in flight returned (never, for a task waiting for its token), without a stop date.
    Here the status changes together with the interpreter's own state, under the lock it changes it with, and
    StopExecution answers once the interpreter has closed the history with ExecutionAborted (promptly: see
    ``_abandon_tasks_of_ended_executions``)."""

    def stop_execution(self) -> ActionResult:
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        stop_date = datetime.datetime.now(datetime.UTC)
        execution.stop(stop_date=stop_date, error=self._get_param("error"), cause=self._get_param("cause"))
        return ActionResult({"stopDate": execution.stop_date})

    def stop(self, stop_date: datetime.datetime, error: str | None, cause: str | None) -> None:
        env = _interpreter_environment(self)
        if env is None:
            return
        with env._state_mutex:
            if not env.is_running():
                return
            self.exec_status = ExecutionStatus.ABORTED
            self.stop_date, self.error, self.cause = stop_date, error, cause
            env.event_manager.ending.set()
            env.set_stop(stop_date=stop_date, cause=cause, error=error)
        env.event_manager.closed.wait(_INTERPRETER_WAIT_SECONDS)

    _replace(undo, StepFunctionResponse, "stop_execution", stop_execution)
    _replace(undo, Execution, "stop", stop)


def _interpreter_environment(execution: Any) -> Any:
    """The interpreter's ``Environment`` of a running execution, or None once the execution has closed.

    StartExecution answers before the interpreter's thread has made the environment and started the program,
    and ``set_stop``/``set_timed_out`` do nothing to a program that has not started: so this waits for both."""
    deadline = time.monotonic() + _INTERPRETER_WAIT_SECONDS
    while execution.exec_status == ExecutionStatus.RUNNING and time.monotonic() < deadline:
        env = execution.exec_worker.env
        if env is not None and env.program_state() is not None:
            return env
        time.sleep(0.001)
    return None


def _keep_ended_executions_ended(undo: ExitStack) -> None:
    """A stopped or timed-out execution stays ABORTED or TIMED_OUT. In moto, ``Environment.set_error`` and
    ``set_timed_out`` replace whatever state the program is in (a task failing after StopExecution turned
    ABORTED into FAILED), and ``_reflect_execution_status`` replaces what StopExecution recorded. Now an
    error or a timeout only ends a running program, and what StopExecution recorded stands."""
    set_error = Environment.__dict__["set_error"]
    set_timed_out = Environment.__dict__["set_timed_out"]
    reflect_execution_status = BaseExecutionWorkerCommunication.__dict__["_reflect_execution_status"]

    def _set_error(self, error) -> None:
        with self._state_mutex:
            if not isinstance(self._program_state, ProgramStopped | ProgramTimedOut):
                set_error(self, error)

    def _set_timed_out(self) -> None:
        with self._state_mutex:
            if self.is_running():
                self.event_manager.ending.set()
                set_timed_out(self)

    def _reflect_execution_status(self) -> None:
        if self.execution.exec_status != ExecutionStatus.ABORTED:
            reflect_execution_status(self)

    _replace(undo, Environment, "set_error", _set_error)
    _replace(undo, Environment, "set_timed_out", _set_timed_out)
    _replace(undo, BaseExecutionWorkerCommunication, "_reflect_execution_status", _reflect_execution_status)


def _close_histories_at_their_end(undo: ExitStack) -> None:
    """An execution's history ends with its closing event (ExecutionSucceeded, -Failed, -Aborted, -TimedOut).
    moto's ``EventManager.add_event`` let a task that was in flight when the execution stopped add its result
    after ExecutionAborted. Now a history takes nothing after its closing event, and ``EventManager.closed``
    is set then, for whoever waits for the history to be complete.

    Nor does it take anything between a stop or a timeout (``EventManager.ending``, set just before) and the
    closing event: moto's components evaluate to nothing once the execution is not running, so a task thread
    that went on meanwhile recorded garbage (a LambdaFunctionScheduled whose timeoutInSeconds was the state's
    input), which made the whole history unreadable (GetExecutionHistory answered HTTP 500)."""
    event_manager_init = EventManager.__dict__["__init__"]
    add_event = EventManager.__dict__["add_event"]
    closing = threading.Lock()  # one for every history: adding an event takes microseconds

    def __init__(self, *args, **kwargs) -> None:
        event_manager_init(self, *args, **kwargs)
        self.ending = threading.Event()
        self.closed = threading.Event()

    def _add_event(self, context, event_type, *args, **kwargs) -> int:
        with closing:
            if self.closed.is_set() or (self.ending.is_set() and event_type not in _CLOSING_EVENTS):
                return context.last_published_event_id
            event_id = add_event(self, context, event_type, *args, **kwargs)
            if event_type in _CLOSING_EVENTS:
                self.closed.set()
            return event_id

    _replace(undo, EventManager, "__init__", __init__)
    _replace(undo, EventManager, "add_event", _add_event)


def _abandon_tasks_of_ended_executions(undo: ExitStack) -> None:
    """When an execution is stopped or times out, Step Functions closes it without waiting for the task in
    flight. moto's ``ExecutionState._evaluate_with_timeout`` waits for the task (or its TimeoutSeconds) on an
    event nothing else sets, so the execution closed only when the task returned, and a task waiting for a
    token never did. This is moto's method with that one wait changed: it also ends when the execution does.
    Only the task's own frame (moto runs it in a thread, on a copy of the stack) is abandoned: the state's
    thread alone touches the execution's stack and states, before and after the wait, so an abandoned task
    cannot corrupt what the execution records; ``_close_histories_at_their_end`` keeps its late events out."""

    def _evaluate_with_timeout(self, env) -> None:
        self.timeout.eval(env=env)
        output = _run_in_frame(self, env, timeout_seconds=env.stack.pop())
        if output is _ABANDONED:
            return  # the execution ended: it closes without the task's result
        env.stack.append(output)
        if not self._is_language_query_jsonpath():
            env.states.set_result(output)
        if self.assign_decl:
            self.assign_decl.eval(env=env)
        if self.result_selector:
            self.result_selector.eval(env=env)
        if self.result_path:
            self.result_path.eval(env)
        else:
            env.states.reset(input_value=env.stack.pop())

    _replace(undo, ExecutionState, "_evaluate_with_timeout", _evaluate_with_timeout)


_ABANDONED = object()


def _run_in_frame(state: Any, env: Any, timeout_seconds: float) -> Any:
    """As moto runs a task: in a frame and thread of its own, on a copy of the stack. Returns its output, or
    ``_ABANDONED`` if the execution ended first; raises the task's error, or EvalTimeoutError after
    ``timeout_seconds``."""
    frame = env.open_frame()
    frame.states.reset(input_value=env.states.get_input())
    frame.stack = copy.deepcopy(env.stack)
    outputs: list[Any] = []
    failures: list[Exception] = []
    finished = threading.Event()

    def evaluate() -> None:
        try:
            state._eval_execution(frame)
            outputs.extend(frame.stack)
        except Exception as failure:  # handed to the state's own thread, as if raised there
            failures.append(failure)
        finished.set()

    threading.Thread(target=evaluate, daemon=True).start()
    deadline = time.monotonic() + timeout_seconds
    while not finished.wait(min(_ENDED_EXECUTION_POLL_SECONDS, max(0.0, deadline - time.monotonic()))):
        if not env.is_running() or time.monotonic() >= deadline:
            break
    frame.set_ended()
    env.close_frame(frame)
    if not finished.is_set():
        if not env.is_running():
            return _ABANDONED
        raise EvalTimeoutError()
    if failures:
        raise failures[0]
    return outputs.pop()


def _time_out_executions(timeout_scale: float, undo: ExitStack) -> None:
    """A state machine's top-level TimeoutSeconds ends its execution TIMED_OUT, with ExecutionTimedOut last in
    its history. ``Program.eval`` enforces it by joining the interpreter's thread with that timeout, read
    straight from the definition (so ``timeout_scale`` never reached it), and reports TIMED_OUT at once while
    the interpreter writes ExecutionTimedOut moments later. Here the timeout is scaled like a task's, and the
    status waits (briefly) for that last event, so whoever sees TIMED_OUT finds the history closed."""

    def eval(self, env) -> None:
        timeout = self.timeout_seconds.timeout_seconds * timeout_scale if self.timeout_seconds else None
        env.next_state_name = self.start_at.start_at_name
        interpreter = threading.Thread(target=EvalComponent.eval, args=(self, env), daemon=True)
        TMP_THREADS.append(interpreter)
        interpreter.start()
        interpreter.join(timeout=timeout)
        if interpreter.is_alive():
            env.set_timed_out()
            interpreter.join(timeout=_INTERPRETER_WAIT_SECONDS)

    _replace(undo, Program, "eval", eval)


def _publish_execution_status_changes(undo: ExitStack) -> None:
    """Step Functions puts a "Step Functions Execution Status Change" event on the account's default event bus as
    a Standard workflow's execution starts and as it ends, its detail "the same information as the DescribeExecution
    API" (cw-events.html), so EventBridge rules can act on it; moto's Step Functions puts none. The parser's
    ``Execution.start`` and ``BaseExecutionWorkerCommunication.terminated`` (where the interpreter's thread has
    recorded the end) now put them; Express workflows put none, as on AWS."""
    start = Execution.__dict__["start"]
    terminated = BaseExecutionWorkerCommunication.__dict__["terminated"]

    def _start(self) -> None:
        start(self)
        _put_status_change(self, ExecutionStatus.RUNNING)  # by now the interpreter may even have ended it

    def _terminated(self) -> None:
        terminated(self)
        _put_status_change(self.execution, self.execution.exec_status)

    _replace(undo, Execution, "start", _start)
    _replace(undo, BaseExecutionWorkerCommunication, "terminated", _terminated)


def _put_status_change(execution: Any, status: ExecutionStatus) -> None:
    if execution.sm_type == StateMachineType.EXPRESS:
        return
    ended = status != ExecutionStatus.RUNNING
    succeeded = status == ExecutionStatus.SUCCEEDED
    detail = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status.value,
        "startDate": _epoch_millis(execution.start_date),
        "stopDate": _epoch_millis(execution.stop_date) if ended else None,
        "input": json.dumps(execution.input_data, separators=(",", ":")),
        "inputDetails": {"included": True},
        "output": json.dumps(execution.output, separators=(",", ":")) if succeeded else None,
        "outputDetails": {"included": True} if succeeded else None,
        "error": execution.error if ended else None,
        "cause": execution.cause if ended else None,
    }
    entry = {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Detail": json.dumps(detail),
        "Resources": [execution.exec_arn],
    }
    try:
        events_backends[execution.account_id][execution.region_name].put_events([entry])
    except Exception:  # a target moto cannot deliver to: the execution goes on, as with a best-effort event
        _log.exception("could not deliver the status change of %s", execution.exec_arn)


def _epoch_millis(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _deliver_events_to_lambda_functions(wait_scale: float, background: BackgroundWork, undo: ExitStack) -> None:
    """EventBridge skips a DISABLED rule and invokes a Lambda function target asynchronously (InvocationType Event:
    Lambda queues the event, retries the function's errors and uses the function's own dead-letter queue).
    moto's ``Rule.send_to_targets`` delivers through disabled rules, ignores a target's InputPath and, inside the
    PutEvents call, raises NotImplementedError for a function. Function targets are now invoked from threads of
    their own (``background``), and SQS targets get what InputPath selects; other targets keep moto's delivery.
    A delivery that fails is retried as the target's RetryPolicy says if EventBridge retries that error
    (throttling, a 5xx), its back-off scaled by ``wait_scale``; then, or at once for an error retrying cannot
    mend (no such function), the event goes to the target's DeadLetterConfig queue (eb-rule-dlq.html)."""
    send_to_targets = Rule.__dict__["send_to_targets"]
    closing = threading.Event()  # set as the local cloud closes: retries waiting then give up
    undo.callback(closing.set)

    def _send_to_targets(self, original_event: dict, transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        by_service: dict[str, list[dict]] = {}
        for target in self.targets:
            by_service.setdefault(parse_arn(target["Arn"]).service, []).append(target)
        functions, queues = by_service.pop("lambda", []), by_service.pop("sqs", [])
        if by_service:
            others = copy.copy(self)
            others.targets = [target for targets in by_service.values() for target in targets]
            send_to_targets(others, original_event, transform_input)
        for target in queues:
            event = _target_input(target, original_event) if transform_input else _with_iso_time(original_event)
            queue = parse_arn(target["Arn"])
            group = target.get("SqsParameters", {}).get("MessageGroupId")
            sqs_backends[queue.account][queue.region].send_message(queue.resource_id, json.dumps(event), group_id=group)
        for target in functions:
            event = _target_input(target, original_event) if transform_input else original_event
            background.start(_deliver_to_function, self.arn, target, event, wait_scale, closing)

    _replace(undo, Rule, "send_to_targets", _send_to_targets)


def _target_input(target: dict, event: Any) -> Any:
    """What EventBridge passes a target (eb-transform-target-input.html): the event (its time in ISO 8601, as moto's
    SQS delivery writes it), the target's constant Input, the part its InputPath selects (a dotted JSONPath, such
    as ``$.detail.parked``), or its InputTransformer's output."""
    if "Input" in target:
        return json.loads(target["Input"])
    event = _with_iso_time(event)
    if "InputPath" in target:
        selected = event
        for key in target["InputPath"].removeprefix("$").split(".")[1:]:
            selected = selected.get(key) if isinstance(selected, dict) else None
        return selected
    transformer = target.get("InputTransformer")
    if transformer is None:
        return event
    return EventTemplateParser.parse(transformer.get("InputTemplate"), transformer.get("InputPathsMap", {}), event)


def _with_iso_time(event: dict) -> dict:
    return {**event, "time": iso_8601_datetime_without_milliseconds(utcfromtimestamp(int(float(event["time"]))))}


class _DeliveryFailure(NamedTuple):
    code: str  # EventBridge's ERROR_CODE
    message: str
    retriable: bool


def _deliver_to_function(rule_arn: str, target: dict, event: Any, wait_scale: float, closing: threading.Event) -> None:
    """Hand one event to a function as EventBridge does (eb-rule-retry-policy.html, eb-rule-dlq.html): retry an
    error it retries until the target's MaximumRetryAttempts (185) or MaximumEventAgeInSeconds (86,400) runs out,
    backing off exponentially from 1 s to 5 minutes (EventBridge publishes no figures; no jitter, so tests can
    count); then, or at once for any other error, send the event to the target's dead-letter queue."""
    policy = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86_400, **target.get("RetryPolicy", {})}
    retries, waited = 0, 0.0
    while (failure := _invoke_asynchronously(target["Arn"], event)) is not None:
        delay = min(2.0**retries, 300.0)
        if not failure.retriable:
            exhausted = None
        elif retries >= policy["MaximumRetryAttempts"]:
            exhausted = "MaximumRetryAttempts"
        elif waited + delay > policy["MaximumEventAgeInSeconds"]:
            exhausted = "MaximumEventAgeInSeconds"
        elif closing.wait(delay * wait_scale):
            return
        else:
            retries, waited = retries + 1, waited + delay
            continue
        _send_to_rule_dead_letter_queue(rule_arn, target, event, failure, retries, exhausted)
        return


def _invoke_asynchronously(function_arn: str, event: Any) -> _DeliveryFailure | None:
    """Invoke with InvocationType Event, through the Lambda backend the API uses; None once Lambda took the event."""
    arn = parse_arn(function_arn)
    try:
        get_lambda_backend(arn.account, arn.region).invoke(
            function_arn, None, json.dumps(event), {"X-Amz-Invocation-Type": "Event"}, {}
        )
    except LambdaClientError as error:
        status = int(error.code)
        code = {404: "NO_RESOURCE", 429: "THROTTLING"}.get(status, "SDK_CLIENT_ERROR")
        return _DeliveryFailure(code, error.message, retriable=status == 429 or status >= 500)
    except Exception as error:  # the Lambda service itself failing: a 5xx, which EventBridge retries
        return _DeliveryFailure("INTERNAL_ERROR", str(error), retriable=True)
    return None


def _send_to_rule_dead_letter_queue(
    rule_arn: str, target: dict, event: Any, failure: _DeliveryFailure, retries: int, exhausted: str | None
) -> None:
    """The event, with the attributes EventBridge adds (eb-rule-dlq.html), on the target's SQS dead-letter queue;
    without one, EventBridge drops the event."""
    dead_letter_arn = target.get("DeadLetterConfig", {}).get("Arn")
    if not dead_letter_arn:
        return
    attributes = {
        "RULE_ARN": rule_arn,
        "TARGET_ARN": target["Arn"],
        "ERROR_CODE": failure.code,
        "ERROR_MESSAGE": failure.message,
        "RETRY_ATTEMPTS": str(retries),
    }
    if exhausted is not None:
        attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
    queue = parse_arn(dead_letter_arn)
    message_attributes = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
    try:
        sqs_backends[queue.account][queue.region].send_message(
            queue.resource_id, json.dumps(event), message_attributes=message_attributes
        )
    except SQSException:  # no such queue: EventBridge counts it (InvocationsFailedToBeSentToDLQ) and drops the event
        _log.warning("could not send an undelivered event to %s", dead_letter_arn)


def _keep_function_dead_letter_configs(undo: ExitStack) -> None:
    """Lambda keeps a function's DeadLetterConfig (CreateFunction, UpdateFunctionConfiguration, the CloudFormation
    property) and sends there the asynchronous events it gives up on; moto 5.2.5 drops it in all three. It is kept
    as ``LambdaFunction.dead_letter_config`` ({} for none), which GetFunctionConfiguration shows and the local
    cloud's Lambda runtime sends to."""
    init = LambdaFunction.__dict__["__init__"]
    update_configuration = LambdaFunction.__dict__["update_configuration"]
    get_configuration = LambdaFunction.__dict__["get_configuration"]
    create_from_cloudformation_json = LambdaFunction.__dict__["create_from_cloudformation_json"].__func__

    def __init__(self, account_id, spec, *args, **kwargs) -> None:
        init(self, account_id, spec, *args, **kwargs)
        self.dead_letter_config = spec.get("DeadLetterConfig") or {}

    def _update_configuration(self, config_updates: dict) -> dict:
        self.dead_letter_config = config_updates.get("DeadLetterConfig", self.dead_letter_config)
        return update_configuration(self, config_updates)

    def _get_configuration(self, *args, **kwargs) -> dict:
        configuration = get_configuration(self, *args, **kwargs)
        if self.dead_letter_config.get("TargetArn"):
            configuration["DeadLetterConfig"] = {"TargetArn": self.dead_letter_config["TargetArn"]}
        return configuration

    def _create_from_cloudformation_json(cls, resource_name, cloudformation_json, *args, **kwargs):
        function = create_from_cloudformation_json(cls, resource_name, cloudformation_json, *args, **kwargs)
        function.dead_letter_config = cloudformation_json["Properties"].get("DeadLetterConfig") or {}
        return function

    _replace(undo, LambdaFunction, "__init__", __init__)
    _replace(undo, LambdaFunction, "update_configuration", _update_configuration)
    _replace(undo, LambdaFunction, "get_configuration", _get_configuration)
    _replace(undo, LambdaFunction, "create_from_cloudformation_json", classmethod(_create_from_cloudformation_json))


def _fail_sqs_sends(faults: SendFaults, undo: ExitStack) -> None:
    """Lets a test make SQS fail as it does when it cannot take a message: the SendMessage requests ``faults`` names
    are answered, before moto's backend stores anything, with the server error every AWS API may answer
    (ServiceUnavailable, HTTP 503: "The request has failed due to a temporary failure of the server"), which SDKs
    retry and a Step Functions task reports as its error. Wraps ``SQSResponse.send_message``."""
    send_message = SQSResponse.__dict__["send_message"]
    unavailable = json.dumps(
        {
            "__type": "com.amazonaws.sqs#ServiceUnavailable",
            "message": "The request has failed due to a temporary failure of the server.",
        }
    )
    headers = {
        "status": 503,
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-query-error": "ServiceUnavailable;Receiver",  # SQS's JSON protocol names the error here too
    }

    def _send_message(self) -> Any:
        if faults.take(self._get_queue_name()):
            return unavailable, dict(headers)
        return send_message(self)

    _replace(undo, SQSResponse, "send_message", _send_message)


def _transact_without_copying_tables(undo: ExitStack) -> None:
    """``DynamoDBBackend.transact_write_items`` deep-copies each table it writes, once per item, to
    restore the whole table if the transaction is cancelled: time in proportion to the table, about
    20 ms per copy at 1,000 items, on every reserve and cancel, so a long run gets ever slower. With
    requests serialized (``_serialize_dynamodb``) nothing else can change a table mid-transaction, so
    the copies are skipped (``copy.deepcopy`` in that module returns a ``Table`` itself) and a
    cancelled transaction puts back only the items it touched."""
    original = dynamodb_models.DynamoDBBackend.__dict__["transact_write_items"]
    without_table_copies = types.SimpleNamespace(**vars(copy))
    without_table_copies.deepcopy = lambda value, memo=None: (
        value if isinstance(value, Table) else copy.deepcopy(value, memo)
    )

    def transact_write_items(self, transact_items):
        before = _touched_items(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            for table_name, key, item in reversed(before):
                if item is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, item.to_json()["Attributes"])
            raise

    _replace(undo, dynamodb_models, "copy", without_table_copies)
    _replace(undo, dynamodb_models.DynamoDBBackend, "transact_write_items", transact_write_items)


def _query_one_partition(undo: ExitStack) -> None:
    """``Table.query`` on a table's own key reads ``all_items()``, every item of the table sorted, and keeps those
    of the one partition asked for: time in proportion to the table on every query. The choreography's saga log
    is queried for one saga's events on every event, so a run of a few hundred bookings grew slower as the log
    grew. With requests serialized (``_serialize_dynamodb``), such a query now reads its partition alone, in the
    same order; a query on an index still reads them all."""
    query, all_items = Table.__dict__["query"], Table.__dict__["all_items"]
    asked = threading.local()  # the (table, partition key) of the query this thread is running

    def query_partition(self, hash_key, *args, **kwargs):
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        asked.partition = (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            asked.partition = None

    def items_asked_for(self):
        table, hash_key = getattr(asked, "partition", None) or (None, None)
        if table is not self:
            return all_items(self)
        partition = self.items.get(hash_key)
        if partition is None:
            return []
        return sorted(partition.values(), key=lambda item: item.range_key) if self.range_key_attr else [partition]

    _replace(undo, Table, "query", query_partition)
    _replace(undo, Table, "all_items", items_asked_for)


def _touched_items(backend: Any, transact_items: list[dict]) -> list[tuple[str, dict, Any]]:
    """(table name, key, a copy of the item now or None) for each item a transaction writes."""
    touched = []
    for request in transact_items:
        for operation in request.values():
            try:
                table = backend.get_table(operation["TableName"])
                attributes = operation.get("Key") or operation["Item"]
                key = {name: attributes[name] for name in (table.hash_key_attr, table.range_key_attr) if name}
                item = backend.get_item(operation["TableName"], key)
            except Exception:  # malformed: the original refuses it without writing it
                continue
            touched.append((operation["TableName"], key, copy.deepcopy(item)))
    return touched


def _make_runtime_and_data_limit_errors_uncatchable(undo: ExitStack) -> None:
    """Step Functions neither retries nor catches States.Runtime (a path that selects nothing, say) and
    States.DataLimitExceeded (a payload over the quota): the execution fails with them. moto's
    ``ErrorEqualsDecl`` matches them like any other error, so a Catch on States.ALL ran its Next state.
    ``ExecutionState._handle_retry`` and ``_handle_catch`` see every failure of a Task, Map or Parallel
    state, whole; they now answer that these cannot be retried and were not caught."""
    handle_retry = ExecutionState.__dict__["_handle_retry"]
    handle_catch = ExecutionState.__dict__["_handle_catch"]

    def _handle_retry(self, env, failure_event: FailureEvent) -> RetryOutcome:
        if _is_uncatchable(failure_event):
            return RetryOutcome.CannotRetry
        return handle_retry(self, env, failure_event)

    def _handle_catch(self, env, failure_event: FailureEvent) -> None:
        if _is_uncatchable(failure_event):
            env.stack.append(CatchOutcome.NotCaught)  # where ExecutionState._eval_state reads the outcome
            return
        handle_catch(self, env, failure_event)

    _replace(undo, ExecutionState, "_handle_retry", _handle_retry)
    _replace(undo, ExecutionState, "_handle_catch", _handle_catch)


def _is_uncatchable(failure_event: FailureEvent) -> bool:
    return failure_event.error_name is not None and failure_event.error_name.error_name in UNCATCHABLE_ERRORS


def _measure_payloads_as_utf8(undo: ExitStack) -> None:
    """Step Functions limits a task's, a state's and an execution's input and output to 262,144 bytes "of data
    as a UTF-8 encoded string". moto's ``quotas.is_within_size_quota`` measures ``json.dumps`` output, whose
    ", " and ": " separators and \\u escapes make a payload look bigger than the compact JSON Step Functions
    passes on, and refuses exactly 262,144 bytes. Measured here as compact JSON in UTF-8, up to and including
    the quota. moto's modules import the function by name, so each gets this one."""

    def is_within_size_quota(value: Any) -> bool:
        return _utf8_size(value) <= MAX_STATE_SIZE_UTF8_BYTES

    for module in (state_module, state_task_service, state_task_lambda):
        _replace(undo, module, "is_within_size_quota", is_within_size_quota)


def _utf8_size(value: Any) -> int:
    """A payload's size as Step Functions counts it: a string as it is, anything else as compact JSON; in UTF-8."""
    if not isinstance(value, str):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(value.encode())


def _limit_state_input_size(undo: ExitStack) -> None:
    """Step Functions' payload quota covers "input data when scheduling a task, entering a state", and its error
    handling names "the state input is larger than the payload size quota after Parameters processing" as a cause
    of States.DataLimitExceeded; moto checks outputs only. The input is checked where a state takes it in
    (``CommonStateField._eval_state_input``, after InputPath) and where Parameters or Arguments make a task's,
    Pass's, Map's or Parallel's effective input (``Parargs._eval_body``)."""
    eval_state_input = CommonStateField.__dict__["_eval_state_input"]
    eval_parargs = Parargs.__dict__["_eval_body"]

    def _eval_state_input(self, env) -> None:
        eval_state_input(self, env)
        _check_input_size(env, f"The state '{self.name}'")

    def _eval_body(self, env) -> None:
        eval_parargs(self, env)
        _check_input_size(env, f"The Parameters of state '{env.next_state_name}'")

    _replace(undo, CommonStateField, "_eval_state_input", _eval_state_input)
    _replace(undo, Parargs, "_eval_body", _eval_body)


def _check_input_size(env: Any, whose: str) -> None:
    """Fail with States.DataLimitExceeded if the value just put on the stack is over the payload quota."""
    if _utf8_size(env.stack[-1]) <= MAX_STATE_SIZE_UTF8_BYTES:
        return
    error = StatesErrorNameType.StatesStatesDataLimitExceeded
    cause = f"{whose} has an input larger than the maximum number of bytes service limit ({MAX_STATE_SIZE_UTF8_BYTES})."
    failed = TaskFailedEventDetails(error=error.to_name(), cause=cause)
    details = EventDetails(taskFailedEventDetails=failed)  # type: ignore[typeddict-item]  # one key, as moto does
    raise FailureEventException(FailureEvent(env, StatesErrorName(typ=error), HistoryEventType.TaskFailed, details))


def _parse_definitions_apart(undo: ExitStack) -> None:
    """moto's ASL ``Preprocessor`` keeps its stack of QueryLanguage scopes in a class attribute, one list for every
    instance: two definitions parsed at once (two executions of a definition not yet cached, starting together)
    push and pop on the same list, and one of them fails with IndexError, its execution never starting. On AWS
    concurrent executions do not meet each other there. Each preprocessor now keeps a list of its own."""

    def scopes(self: Preprocessor) -> list:
        return self.__dict__.setdefault("_own_query_language_scopes", [])

    _replace(undo, Preprocessor, "_query_language_per_scope", property(scopes))


def _look_up_moto_once(undo: ExitStack) -> None:
    """moto looks up, on each request, what does not change while the local cloud runs: its server checks the
    request's service against ``list_of_moto_modules``, which lists moto's package directory and stats every entry
    in it (about a tenth of the local cloud's CPU); its request stubber imports the service's backend module anew
    (``get_backend``) and rebuilds the backend's URL table (``BaseBackend.urls`` formats each path with each URL
    base), together about 1 ms of the three Lambda invocations of a booking. Each is done once: once per backend for
    the URL tables, since a reset makes new backends."""
    modules = tuple(backends.list_of_moto_modules())
    _replace(undo, backends, "list_of_moto_modules", lambda: modules)
    _replace(undo, backends, "get_backend", functools.cache(backends.get_backend))
    urls = functools.cached_property(BaseBackend.__dict__["urls"].fget)
    urls.__set_name__(BaseBackend, "urls")
    _replace(undo, BaseBackend, "urls", urls)


@contextmanager
def shortcuts() -> Iterator[None]:
    """moto's request handling with the local cloud's shortcuts and nothing else of it, for moto in this process
    (the handler tests); they answer byte for byte what moto does without them."""
    with ExitStack() as undo:
        _take_shortcuts(undo)
        yield


_MODEL_LOADS = ("load_service_model", "load_data_with_path")  # botocore loader methods whose results it keeps


def _forget_models_read_for_region_lists(undo: ExitStack) -> None:
    """A service's moto backend lists its regions through one boto3 session that moto keeps for the process, and
    botocore finds them from the service's model, which that session's loader then keeps too: a third copy of each
    model next to moto's own and the clients', about 28 MB over a deploy. The models it read go once the list is
    made; the endpoints and partitions it reads them with stay."""
    listed = AccountSpecificBackend.__dict__["_generate_regions"]  # moto's lru_cache of the lists

    def _generate_regions(self, service_name: str) -> list[str]:
        regions = listed(self, service_name)
        cache = AccountSpecificBackend.get_session()._session.get_component("data_loader")._cache
        models = [key for key in cache if key[0] in _MODEL_LOADS and any(str(arg).endswith("service-2") for arg in key)]
        for key in models:
            del cache[key]
        return regions

    _replace(undo, AccountSpecificBackend, "_generate_regions", _generate_regions)


def _take_shortcuts(undo: ExitStack) -> None:
    _list_method_names_once(undo)
    _find_members_of_dicts_once(undo)
    _convert_each_timestamp_once(undo)
    _parse_json_templates_as_json(undo)
    _parse_each_update_expression_once(undo)
    _lex_each_condition_expression_once(undo)
    _forget_models_read_for_region_lists(undo)


def _list_method_names_once(undo: ExitStack) -> None:
    """``BaseResponse.call_action`` lists the methods of the response class (``inspect.getmembers``) on every
    request, to check the action is one: about a quarter of what moto spends on a GetItem. A class's methods do
    not change while it answers (the patches here replace methods, never add or remove one), so each class's are
    listed once."""
    listed: dict[type, frozenset[str]] = {}

    def method_names(clazz: type) -> frozenset[str]:
        if clazz not in listed:
            listed[clazz] = frozenset(method_names_from_class(clazz))
        return listed[clazz]

    _replace(undo, moto_responses, "method_names_from_class", method_names)


def _find_members_of_dicts_once(undo: ExitStack) -> None:
    """moto's response serializer looks up each member of each structure in a result under every name its alias
    providers offer (``AttributePicker``), afresh for every value: a history event has about 60 members, mostly
    absent, so reading a history of 20 events took about 10 ms, most of it here, and DynamoDB's items pay it on
    every attribute. For a dict the names depend only on the member and its structure, never on the value, so
    they are found once per member; lookups in a dict stay lookups by key, as in ``get_value``."""
    original = AttributePicker.__dict__["__call__"]
    names: dict[tuple, tuple[str, ...]] = {}  # (picker, member shape, key, its structure) -> names; shapes are cached

    def pick(self, context) -> Any:
        obj = context.obj
        if type(obj) is not dict or self.alias_providers is not DEFAULT_ALIAS_PROVIDERS or self.response_transformers:
            return original(self, context)
        member = (type(self), context.shape, context.key, getattr(context.shape, "parent", None))
        found = names.get(member)
        if found is None:
            found = names[member] = tuple(self.get_possible_keys(context))
        for name in found:
            if "." in name:  # a path, which ``get_value`` follows
                return original(self, context)
            if name in obj:
                return obj[name]
        return None

    _replace(undo, AttributePicker, "__call__", pick)


def _convert_each_timestamp_once(undo: ExitStack) -> None:
    """moto keeps a history event's timestamp as text, which its serializer parses (dateutil) and formats again on
    every read of the history: half of what a read costs once members are found directly. The conversion depends
    only on the text and the format, so the latest few thousand are remembered."""
    convert = TimestampSerializer.__dict__["_convert_timestamp_to_str"]
    converted: dict[tuple, Any] = {}  # (serializer class, text, format) -> what it is serialized as

    def convert_once(self, value, timestamp_format: str) -> Any:
        if not isinstance(value, str):
            return convert(self, value, timestamp_format)
        key = (type(self), value, timestamp_format)
        if key in converted:
            return converted[key]
        if len(converted) >= 4096:
            converted.clear()
        converted[key] = text = convert(self, value, timestamp_format)
        return text

    _replace(undo, TimestampSerializer, "_convert_timestamp_to_str", convert_once)


def _parse_json_templates_as_json(undo: ExitStack) -> None:
    """moto's CloudFormation reads every template with PyYAML's pure-Python loader, JSON ones too (JSON is YAML):
    half of the CPU of deploying this app. A template that is JSON is read as JSON, as CloudFormation reads it;
    any other still goes to moto's YAML loader. (The two differ only on JSON that YAML 1.1 reads otherwise, such
    as the number ``1e3``, a string to YAML; a synthesized template holds none.)"""
    read_yaml = CloudFormationStack.__dict__["parse_template"].__func__

    def parse_template(template: str) -> dict[str, Any]:
        try:
            return json.loads(template)
        except ValueError:
            return read_yaml(template)

    _replace(undo, CloudFormationStack, "parse_template", staticmethod(parse_template))


def _parse_each_update_expression_once(undo: ExitStack) -> None:
    """moto parses an UpdateExpression twice per UpdateItem (to list the names and values it uses, then to apply
    it), with its pure-Python tokenizer and parser, inside the lock that serializes DynamoDB requests: with 4
    bookings in flight, a sixth of the local cloud's CPU, and a queue on that lock. The tree a parse makes is only
    read (moto validates and applies a deep copy of it), so each expression text is parsed once; a malformed one
    still raises on every request, since a failed parse is not remembered."""
    make = UpdateExpressionParser.__dict__["make"].__func__

    @functools.lru_cache(maxsize=256)
    def parse(expression: str) -> Any:
        return make(UpdateExpressionParser, expression)

    _replace(undo, UpdateExpressionParser, "make", classmethod(lambda cls, expression: parse(expression)))


def _lex_each_condition_expression_once(undo: ExitStack) -> None:
    """moto splits a ConditionExpression into tokens by trying up to six regular expressions on each (fetched from
    ``re``'s cache every time), twice per write that has one (to check the names it uses, then to evaluate it):
    about half of parsing it, and each of the handlers' transactions holds two. The tokens depend only on the text,
    and the parse reads them without changing them (it builds new nodes), so each text is split once; the names and
    values are still put in on every parse, and a text that cannot be split still raises every time."""
    lex = ConditionExpressionParser.__dict__["_lex_condition_expression"]

    @functools.lru_cache(maxsize=256)
    def split(text: str | None) -> tuple:
        return tuple(lex(ConditionExpressionParser(text, None, None)))  # the text is all that splitting reads

    def lex_once(self: ConditionExpressionParser) -> deque:
        return deque(split(self.condition_expression))

    _replace(undo, ConditionExpressionParser, "_lex_condition_expression", lex_once)


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


def _cache_parsed_json_paths(undo: ExitStack) -> None:
    """The interpreter parses a JSONPath (``jsonpath_ng``'s parse, which builds its PLY parser anew: about
    0.5 ms) each time a state reads or writes one, several times a state: about a tenth of the local cloud's
    CPU for an execution whose Lambdas answer at once. A parsed path is a tree that finding and updating only
    read, so one per path is kept, for the paths states read (``json_path``) and their ResultPath alike."""
    for module in (json_path, result_path):
        _replace(undo, module, "parse", functools.lru_cache(maxsize=1024)(module.parse))


def _reuse_interpreter_clients(undo: ExitStack) -> None:
    """``boto_client_for`` builds a new boto3 client for every Lambda invocation and service call the
    interpreter makes: about 4 ms of CPU each, nearly half of an execution whose Lambdas answer at once
    (``python -m bench``). Its clients differ only in service and region (the endpoint no longer matters, see
    below), and boto3 clients are thread-safe, so one of each is kept.

    Each one's requests are answered in this process, as moto answers them under ``mock_aws``: botocore still
    validates and serializes the request and parses the answer, and moto's own request stubber dispatches it to
    the same response classes the server would. The answer comes from botocore's ``before-call`` event, the
    seam botocore's own ``Stubber`` uses, so botocore neither signs the request (no local service checks a
    signature, and the interpreter's clients hold made-up keys) nor runs its send path: about 1 ms of a
    booking's CPU. The answer is parsed as botocore's endpoint parses it, and its clients make one attempt
    (``max_attempts`` 0), so it lacks only the retry handler's count of attempts. A request no local service
    answers is refused, never sent to AWS."""
    clients: dict[tuple, Any] = {}
    creating = threading.Lock()
    stubber = BotocoreStubber()

    def answer_in_process(model: OperationModel, params: dict, **_: Any) -> tuple[AWSResponse, dict]:
        request = create_request_object(params).prepare()
        answer = stubber.process_request(request)
        if answer is None:
            raise RuntimeError(f"the local cloud has no service answering {request.method} {request.url}")
        status, headers, body = answer
        response = AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]
        return response, _parsed(response, model)

    def client(service_name: str, region_name: str, config: Config, endpoint_url: str | None = None, **credentials):
        key = (service_name, region_name)
        with creating:
            if key not in clients:
                clients[key] = boto3.client(
                    service_name=service_name, region_name=region_name, config=config, **credentials
                )
                clients[key].meta.events.register("before-call", answer_in_process)
            return clients[key]

    _replace(undo, boto_client, "boto3", types.SimpleNamespace(client=client))


def _parsed(response: AWSResponse, model: OperationModel) -> dict:
    """An answer as a botocore client parses it (``Endpoint._do_get_response``): the operation's output, or an
    error with its modelled fields."""
    parser = create_parser(model.service_model.resolved_protocol)
    answer = convert_to_response_dict(response, model)
    parsed = parser.parse(answer, model.output_shape)
    if "Error" in parsed and (error_shape := model.service_model.shape_for_error_code(parsed["Error"]["Code"])):
        parsed.update(parser.parse(answer, error_shape))
    return parsed


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
    children: Iterable[Any]
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


def _mirror_tables_in(mirror: TableMirror, undo: ExitStack) -> None:
    """CloudFormation creates and deletes a table in this process's moto, which resolves its Ref and GetAtt, but
    DynamoDB is served by another process (``table_process``): each is done there too, through the classmethods
    moto's CloudFormation has for it (a stack's deletion calls the table's own ``delete``, which does what
    ``delete_from_cloudformation_json`` does; moto's Table has no update, so a stack update changes neither)."""
    create = Table.__dict__["create_from_cloudformation_json"].__func__
    delete = Table.__dict__["delete"]

    def create_in_both(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        table = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        mirror("create_from_cloudformation_json", resource_name, cloudformation_json, account_id, region_name)
        return table

    def delete_in_both(self, account_id: str, region_name: str) -> None:
        delete(self, account_id, region_name)
        mirror("delete_from_cloudformation_json", self.name, {}, account_id, region_name)

    _replace(undo, Table, "create_from_cloudformation_json", classmethod(create_in_both))
    _replace(undo, Table, "delete", delete_in_both)


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


# What DynamoDB answers for an item another transaction holds (the CancellationReason's documented message).
TRANSACTION_CONFLICT = "TransactionConflict"
TRANSACTION_CONFLICT_MESSAGE = "Transaction is ongoing for the item"


class TransactionConflictException(DynamodbException):
    """A PutItem, UpdateItem or DeleteItem refused because a transaction is in progress on its item (HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(ERROR_TYPE_PREFIX + "TransactionConflictException", TRANSACTION_CONFLICT_MESSAGE)


def _conflict_with_transactions_in_progress(transactions: TransactionHolds, undo: ExitStack) -> None:
    """DynamoDB cancels a TransactWriteItems when "an item within [it] is part of another ongoing
    TransactWriteItems request", with TransactionCanceledException and one CancellationReason per item, in
    order: ``TransactionConflict`` ("Transaction is ongoing for the item") where the item is held, ``None``
    elsewhere; and a PutItem, UpdateItem or DeleteItem on such an item fails with TransactionConflictException
    (transaction-apis.html#transaction-conflict-handling, API_TransactWriteItems.html). Neither writes anything.
    moto never overlaps two requests, so it never conflicts. Here a transaction that is applied holds its items
    for ``transactions.window`` (``TransactionHolds``), and so does one its own conditions cancel, on the items
    whose condition held (DynamoDB prepares every item, then releases them):
    ``DynamoDBBackend.transact_write_items`` refuses one that touches a held item before writing anything, and
    ``DynamoHandler.put_item``, ``update_item`` and ``delete_item`` refuse a write to one; ``call_action`` then
    answers once the request's own window has ended, after the lock that serializes requests is released, so
    other requests (another Lambda worker's) can meet the held items meanwhile. A transaction refused for a
    conflict holds nothing and answers at once."""
    transact = dynamodb_models.DynamoDBBackend.__dict__["transact_write_items"]
    call_action = DynamoHandler.__dict__["call_action"]

    def transact_write_items(self, transact_items: list[dict]) -> None:
        named = [
            _item_id(self, operation.get("TableName"), operation.get("Key") or operation.get("Item"))
            for request in transact_items
            for operation in request.values()
        ]
        items = [item for item in named if item is not None]
        if len(named) != len(transact_items) or len(items) != len(named) or len(set(items)) != len(items):
            return transact(self, transact_items)  # malformed: moto refuses it, as DynamoDB does, holding nothing
        held = transactions.held(items)
        if any(held):
            transactions.refuse("TransactWriteItems")
            conflict = (TRANSACTION_CONFLICT, TRANSACTION_CONFLICT_MESSAGE, None)
            raise TransactionCanceledException([conflict if is_held else (None, None, None) for is_held in held])
        try:
            transact(self, transact_items)
        except TransactionCanceledException as cancelled:
            # Cancelled by a condition: in progress all the same, on the items whose part went through.
            reasons = json.loads(cancelled.description)["CancellationReasons"]
            transactions.hold([item for item, reason in zip(items, reasons, strict=True) if reason["Code"] == "None"])
            raise
        transactions.hold(items)

    def refusing(operation: str, action: Callable[[Any], Any], item_of: str) -> Callable[[Any], Any]:
        def refuse_if_held(self) -> Any:
            item = _item_id(self.dynamodb_backend, self.body.get("TableName"), self.body.get(item_of))
            if item is not None and transactions.held([item])[0]:
                transactions.refuse(operation)
                raise TransactionConflictException()
            return action(self)

        return refuse_if_held

    def _call_action(self) -> Any:
        try:
            return call_action(self)
        finally:
            transactions.answer_when_done()

    _replace(undo, dynamodb_models.DynamoDBBackend, "transact_write_items", transact_write_items)
    for operation, action, item_of in (
        ("PutItem", "put_item", "Item"),
        ("UpdateItem", "update_item", "Key"),
        ("DeleteItem", "delete_item", "Key"),
    ):
        _replace(undo, DynamoHandler, action, refusing(operation, DynamoHandler.__dict__[action], item_of))
    _replace(undo, DynamoHandler, "call_action", _call_action)


class _UnparsableExpression(ValueError):
    """What moto's expression parser raises, told apart from other ValueErrors (still one, for moto's own catches)."""


def _refuse_unparsable_expressions(undo: ExitStack) -> None:
    """DynamoDB answers a ConditionExpression or FilterExpression it cannot parse with ValidationException, HTTP 400
    ("Invalid ConditionExpression: Syntax error; ..."), and writes nothing (CommonErrors.html). moto's parser raises
    a ValueError that PutItem, UpdateItem, DeleteItem, TransactWriteItems and Query let through, so its server
    answered 500, which SDKs retry as if DynamoDB were failing. Here they answer ValidationException, with moto's
    own account of the error after "Syntax error;" (DynamoDB names the token and the text near it instead). moto
    parses every condition before it writes, so nothing is written either way; Scan already answered 400."""
    parse = ConditionExpressionParser.__dict__["parse"]

    def parse_or_refuse(self: ConditionExpressionParser) -> Any:
        try:
            return parse(self)
        except ValueError as error:
            raise _UnparsableExpression(str(error)) from error

    def refusing(action: Callable[[Any], Any], expression: str) -> Callable[[Any], Any]:
        def refuse_if_unparsable(self) -> Any:
            try:
                return action(self)
            except _UnparsableExpression as error:
                raise MockValidationException(f"Invalid {expression}: Syntax error; {error}") from error

        return refuse_if_unparsable

    _replace(undo, ConditionExpressionParser, "parse", parse_or_refuse)
    for action, expression in (
        ("put_item", "ConditionExpression"),
        ("update_item", "ConditionExpression"),
        ("delete_item", "ConditionExpression"),
        ("transact_write_items", "ConditionExpression"),
        ("query", "FilterExpression"),
    ):
        _replace(undo, DynamoHandler, action, refusing(DynamoHandler.__dict__[action], expression))


def _item_id(backend: Any, table_name: Any, attributes: Any) -> tuple[str, str, str, str] | None:
    """An item's identity across the local cloud: account, Region, table and key; None where the request does not
    name one (moto then refuses the request)."""
    try:
        table = backend.get_table(table_name)
        key = {name: attributes[name] for name in (table.hash_key_attr, table.range_key_attr) if name}
    except Exception:
        return None
    return backend.account_id, backend.region_name, table_name, json.dumps(key, sort_keys=True)


def put_public_parameter(account: str, region: str, name: str, value: str) -> None:
    """Put a parameter under /aws/service/, where AWS keeps its public parameters. The SSM API refuses
    those names to everyone else, moto's too, so it goes into moto's SSM backend directly, the way moto
    loads the public parameters it ships (latest AMIs, regions)."""
    versions = ssm_backends[account][region]._parameters[name]
    versions.append(
        Parameter(  # type: ignore[abstract]  # moto makes its SSM parameters this way too
            account_id=account,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=utcnow(),
            version=len(versions) + 1,
            data_type="text",
        )
    )


def forget_execution(account: str, region: str, execution_arn: str) -> None:
    """Drop a closed execution from moto's Step Functions, as AWS does once its retention ends (90 days after it
    closed, or 30): DescribeExecution no longer finds it, and its name may be used again. moto keeps executions
    forever and has no API for this, so it goes into the state machine's list of executions directly."""
    backend = stepfunctions_parser_backends[account][region]
    for state_machine in backend.state_machines:
        for execution in list(state_machine.executions):
            if execution.execution_arn == execution_arn:
                if execution.status == "RUNNING":
                    raise ValueError(f"{execution_arn} is still running: Step Functions forgets closed executions")
                state_machine.executions.remove(execution)
                return
    raise LookupError(f"no execution {execution_arn}")


def time_out_execution(account: str, region: str, execution_arn: str) -> None:
    """End a running execution as its own TimeoutSeconds running out would, through the same path
    (``Environment.set_timed_out``, what ``Program.eval`` calls at the deadline): TIMED_OUT, ExecutionTimedOut last
    in its history, the task in flight abandoned. A test aid, for a timeout at a moment the test chooses; returns
    once the status is recorded."""
    execution: Any = stepfunctions_parser_backends[account][region].describe_execution(execution_arn)
    env = _interpreter_environment(execution)
    if env is None:
        raise ValueError(f"{execution_arn} is not running")
    env.set_timed_out()
    deadline = time.monotonic() + _INTERPRETER_WAIT_SECONDS
    while execution.exec_status == ExecutionStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.005)
    if execution.exec_status != ExecutionStatus.TIMED_OUT:
        raise ValueError(f"{execution_arn} ended {execution.exec_status.value} before it could time out")
