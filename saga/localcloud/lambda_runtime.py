"""Runs the deployed Lambda code: each function in its own warm worker processes, as Lambda does.

A function's workers are started lazily on its first invocation and kept warm, so
module state survives between invocations as in a Lambda execution environment.
As Lambda reclaims environments nobody invokes, a worker idle for ``keep_warm``
seconds is stopped, which gives its memory back (the next invocation starts cold).
Each worker is a separate process with the function's own environment variables
(no two functions can race on ``os.environ``) and the function's deployed code
(the zip CloudFormation fetched from the assets bucket) first on ``sys.path``, on an
interpreter of the function's declared runtime where this machine has one (``interpreters``).
Workers are forked from a fork server per interpreter that has imported boto3 and Powertools
and read botocore's models already (``lambda_worker``); it stops with the last worker and starts
again with the next.
A worker runs one invocation at a time; a function runs up to
``CONCURRENCY_PER_FUNCTION`` invocations at once, and further ones queue.

Failures are reported the way Lambda reports them: a ``x-amz-function-error:
Unhandled`` header and a ``{"errorType", "errorMessage", "stackTrace"}`` body, so
Step Functions sees the handler's exception class name as the error name.

An asynchronous invocation (InvocationType ``Event``, as EventBridge and S3
invoke) is answered at once and run in a thread of its own, retried after a
function error and finally sent to the function's dead-letter queue, as Lambda
does with the events it queues.
"""

import contextlib
import datetime
import hashlib
import io
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.exceptions import ClientError
from moto.awslambda.exceptions import LambdaClientError
from moto.utilities.arns import parse_arn

from saga.localcloud.interpreters import LIBRARIES, Interpreter, interpreter_for
from saga.localcloud.moto_patches import BackgroundWork

CONCURRENCY_PER_FUNCTION = 4
INIT_TIMEOUT_SECONDS = 30  # Lambda allows 10 s of init; a cold Python with boto3 is well within it
# Lambda's waits before its two retries of a failed asynchronous invocation (times the local cloud's wait_scale).
ASYNC_RETRY_DELAYS_SECONDS = (60, 120)
DEAD_LETTER_MESSAGE_BYTES = 1024  # Lambda's ErrorMessage attribute: the error message's first 1 KB
WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")


@dataclass(frozen=True)
class _Function:
    """What a worker is built from; any change (new code, new environment) means new workers."""

    arn: str
    name: str
    version: str
    region: str
    handler: str
    runtime: str
    timeout: float
    memory: int
    environment: tuple[tuple[str, str], ...]
    code: bytes


class _Failure(Exception):
    """An invocation that failed outside the handler's own code (init, timeout, crash)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.payload = {"errorType": error_type, "errorMessage": message, "stackTrace": []}


class _ForkServer:
    """Starts workers of one interpreter by asking its fork server (``lambda_worker.serve_forks``) to fork them.

    A forked worker skips importing boto3 and Powertools, the most of a worker's start; what Lambda does in an
    environment's init, importing the handler's module under the function's environment, it still does itself.
    The workers are the fork server's children: it reports each one's pid, and its exit status once it ended."""

    def __init__(self, interpreter: str, libraries: list[str]):
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [interpreter, "-I", str(WORKER_SCRIPT), str(theirs.fileno()), *libraries],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # each worker's own output goes where its function's log goes
            env={"PATH": os.environ.get("PATH", os.defpath), "TZ": "UTC"},
        )
        theirs.close()
        self._socket = ours
        self._starting = threading.Lock()  # one request at a time: each answer names the pid of the last
        self._forked: queue.Queue[int] = queue.Queue()
        self._statuses: dict[int, int] = {}
        self._ended = threading.Condition()
        self._gone = False  # the fork server itself ended: no status will come
        threading.Thread(target=self._listen, daemon=True).start()

    def start(self, code_dir: Path, handler: str, environment: dict[str, str], log: Any) -> "_Forked":
        """A worker running ``handler`` from ``code_dir`` with ``environment``, its stderr on ``log``."""
        stdin, to_stdin = os.pipe()
        from_stdout, stdout = os.pipe()
        stderr = os.open(os.devnull, os.O_WRONLY) if log is subprocess.DEVNULL else os.dup(log.fileno())
        request = {"code_dir": str(code_dir), "handler": handler, "environment": environment}
        try:
            with self._starting:
                socket.send_fds(self._socket, [json.dumps(request).encode()], [stdin, stdout, stderr])
                pid = self._forked.get(timeout=INIT_TIMEOUT_SECONDS)
        except (OSError, queue.Empty):
            for fd in (to_stdin, from_stdout):
                os.close(fd)
            self.close()  # a late answer would name the wrong worker: the next start gets a new fork server
            raise _Failure("Runtime.Unknown", "the local cloud's fork server did not start the worker") from None
        finally:
            for fd in (stdin, stdout, stderr):
                os.close(fd)
        return _Forked(self, pid, os.fdopen(to_stdin, "w", encoding="utf-8"), os.fdopen(from_stdout, encoding="utf-8"))

    def status(self, pid: int, timeout: float | None = 0) -> int | None:
        """The worker's exit status, waiting up to ``timeout`` seconds (None: until it ends); None while it runs."""
        with self._ended:
            self._ended.wait_for(lambda: pid in self._statuses or self._gone, timeout)
            return self._statuses.get(pid)

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        self._socket.close()

    def _listen(self) -> None:
        with self._socket.makefile(encoding="utf-8") as answers:
            for line in answers:
                answer = json.loads(line)
                if "forked" in answer:
                    self._forked.put(answer["forked"])
                else:
                    with self._ended:
                        self._statuses[answer["exited"]] = answer["status"]
                        self._ended.notify_all()
        with self._ended:
            self._gone = True
            self._ended.notify_all()


class _Forked:
    """What a worker uses of ``subprocess.Popen``, for a process its fork server started."""

    def __init__(self, server: _ForkServer, pid: int, stdin: IO[str], stdout: IO[str]):
        self._server, self.pid, self.stdin, self.stdout = server, pid, stdin, stdout

    def poll(self) -> int | None:
        return self._server.status(self.pid)

    def wait(self) -> int | None:
        return self._server.status(self.pid, timeout=None)

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class _Worker:
    """One process running one function's handler."""

    def __init__(self, process: _Forked):
        self._process = process
        self._stdin, self._stdout = process.stdin, process.stdout
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(INIT_TIMEOUT_SECONDS, f"init did not finish within {INIT_TIMEOUT_SECONDS} seconds")
        if "error" in ready:
            self.stop()
            raise _Failure(ready["error"]["errorType"], ready["error"]["errorMessage"])

    def _read(self) -> None:
        for line in self._stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float, timeout_message: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise _Failure("Sandbox.Timedout", timeout_message) from None
        if line is None:
            code = self._process.wait()
            raise _Failure("Runtime.ExitError", f"Runtime exited with error: exit status {code}")
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def invoke(self, request: dict, timeout: float, nominal_timeout: float) -> dict:
        try:
            self._stdin.write(json.dumps(request) + "\n")
            self._stdin.flush()
        except BrokenPipeError:
            code = self._process.wait()
            raise _Failure("Runtime.ExitError", f"Runtime exited with error: exit status {code}") from None
        return self._next(timeout, f"Task timed out after {nominal_timeout:.2f} seconds")

    def stop(self) -> None:
        if self.alive:
            self._process.kill()
        self._process.wait()
        with contextlib.suppress(OSError):
            self._stdin.close()


class _Pool:
    """The warm workers of one function version."""

    def __init__(self, function: _Function, start_worker):
        self.function = function
        self._start_worker = start_worker
        self._idle: list[tuple[_Worker, float]] = []  # with the moment each went idle, the oldest first
        self._count = 0
        self._retired = False
        self._changed = threading.Condition()

    def acquire(self) -> _Worker:
        with self._changed:
            while not self._idle and self._count >= CONCURRENCY_PER_FUNCTION:
                self._changed.wait()
            if self._idle:
                return self._idle.pop()[0]  # the warmest: the oldest ones are left to be reaped
            self._count += 1
        try:
            return self._start_worker(self.function)
        except BaseException:
            self._forget()
            raise

    @property
    def empty(self) -> bool:
        """Whether it has no worker, idle, busy or starting."""
        with self._changed:
            return self._count == 0

    def warm(self) -> None:
        """Start a worker unless the function has one (idle, busy or starting)."""
        with self._changed:
            if self._count:
                return
        try:
            worker = self.acquire()
        except _Failure:
            return
        self.release(worker)

    def release(self, worker: _Worker) -> None:
        if worker.alive and not self._retired:
            with self._changed:
                self._idle.append((worker, time.monotonic()))
                self._changed.notify()
        else:
            worker.stop()
            self._forget()

    def _forget(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify()

    def reap(self, idle_seconds: float) -> None:
        """Stop the workers idle for longer than ``idle_seconds``."""
        cutoff = time.monotonic() - idle_seconds
        with self._changed:
            stale = [worker for worker, since in self._idle if since < cutoff]
            self._idle = [(worker, since) for worker, since in self._idle if since >= cutoff]
        for worker in stale:
            worker.stop()
            self._forget()

    def retire(self) -> None:
        """Stop the idle workers now and the busy ones when they finish."""
        with self._changed:
            self._retired = True
            idle, self._idle = self._idle, []
        for worker, _ in idle:
            worker.stop()


class LambdaRuntime:
    """Runs a moto ``LambdaFunction``'s real handler for moto's Invoke API."""

    def __init__(
        self,
        workdir: Path,
        endpoint_url: str,
        dynamodb_endpoint_url: str,
        wait_scale: float,
        timeout_scale: float,
        log_dir: Path | None,
        background: BackgroundWork,
        keep_warm: float = 60.0,
    ):
        self._workdir = workdir
        self._endpoint_url = endpoint_url
        self._dynamodb_endpoint_url = dynamodb_endpoint_url
        self._wait_scale = wait_scale
        self._timeout_scale = timeout_scale
        self._log_dir = log_dir
        self._background = background
        self._pools: dict[str, _Pool] = {}
        self._fork_servers: dict[str, _ForkServer] = {}  # by interpreter
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._reap, args=(keep_warm,), daemon=True).start()

    def invoke(self, function: Any, body: Any, headers: Any, response_headers: dict) -> bytes:
        """moto's ``LambdaBackend.invoke`` contract: return the payload, put extra headers in ``response_headers``."""
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            message = "Could not parse request body into json"
            raise LambdaClientError("InvalidRequestContentException", message) from None
        invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        spec = _describe(function)
        if invocation_type == "Event":
            dead_letter_arn = function.dead_letter_config.get("TargetArn")
            on_failure = _on_failure_destination(function)
            self._background.start(self._run_queued, spec, event, dead_letter_arn, on_failure)
            return b""
        outcome = self._run(spec, event)
        if "error" in outcome:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(outcome["error"]).encode()
        return outcome["result"].encode()

    def warm(self, function: Any) -> None:
        """Start one worker of the function in the background, if it has none, as Lambda's provisioned
        concurrency initializes an environment before it is invoked. A failed init is left for the first
        invocation to report."""
        pool = self._pool(_describe(function))
        threading.Thread(target=pool.warm, daemon=True).start()

    def close(self) -> None:
        """Stop every worker, and the retries of queued invocations; call after the server stopped taking them."""
        self._closed.set()
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            servers, self._fork_servers = list(self._fork_servers.values()), {}
        for pool in pools:
            pool.retire()
        for server in servers:
            server.close()

    def _reap(self, keep_warm: float) -> None:
        """Stop the workers idle for ``keep_warm`` seconds, and the fork servers once no worker is left."""
        while not self._closed.wait(min(max(keep_warm / 2, 0.1), 10)):
            with self._lock:
                pools = list(self._pools.values())
            for pool in pools:
                pool.reap(keep_warm)
            with self._lock:
                if all(pool.empty for pool in self._pools.values()):
                    servers, self._fork_servers = list(self._fork_servers.values()), {}
                else:
                    servers = []
            for server in servers:
                server.close()

    def _pool(self, spec: _Function) -> _Pool:
        with self._lock:
            pool = self._pools.get(spec.arn)
            if pool is None or pool.function != spec:
                if pool is not None:
                    pool.retire()
                pool = self._pools[spec.arn] = _Pool(spec, self._start_worker)
            return pool

    def _run_queued(self, spec: _Function, event: Any, dead_letter_arn: str | None, on_failure: str | None) -> None:
        """An asynchronous invocation as Lambda runs it (invocation-async-error-handling.html): after a function
        error, two more attempts, a minute and then two minutes later; after the last, the event goes to the
        function's dead-letter queue, if it has one, and a record of it to its on-failure destination, if it has
        one (an EventBridge bus)."""
        request_id = str(uuid.uuid4())  # one request, however many attempts
        attempts = 0
        for delay in (0, *ASYNC_RETRY_DELAYS_SECONDS):
            if self._closed.wait(delay * self._wait_scale):
                return
            outcome = self._run(spec, event, request_id)
            attempts += 1
            if "error" not in outcome:
                return
        if dead_letter_arn:
            self._send_to_dead_letter_queue(dead_letter_arn, event, request_id, outcome["error"])
        if on_failure:
            self._send_failure_record(on_failure, spec, event, request_id, attempts, outcome["error"])

    def _send_failure_record(
        self, bus_arn: str, spec: _Function, event: Any, request_id: str, attempts: int, error: dict
    ) -> None:
        """The invocation record Lambda sends an EventBridge destination (invocation-async-retain-records.html):
        source ``lambda``, detail-type ``Lambda Function Invocation Result - Failure``, the request and the error."""
        record = {
            "version": "1.0",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"{spec.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": error,
        }
        arn = parse_arn(bus_arn)
        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=arn.region
        )
        entry = {
            "EventBusName": bus_arn,
            "Source": "lambda",
            "DetailType": "Lambda Function Invocation Result - Failure",
            "Detail": json.dumps(record),
            "Resources": [spec.arn],
        }
        with contextlib.suppress(ClientError):  # Lambda counts it (DestinationDeliveryFailures); the record is lost
            session.client("events", endpoint_url=self._endpoint_url).put_events(Entries=[entry])

    def _send_to_dead_letter_queue(self, target_arn: str, event: Any, request_id: str, error: dict) -> None:
        """The event as it came, with the attributes Lambda adds (RequestID, ErrorCode: Invoke's status, 200 for a
        function that ran and failed, ErrorMessage), on the SQS queue or SNS topic, through their APIs."""
        message = (error["errorMessage"] or error["errorType"]).encode()[:DEAD_LETTER_MESSAGE_BYTES]
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": message.decode(errors="ignore")},
        }
        arn = parse_arn(target_arn)
        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=arn.region
        )
        try:
            if arn.service == "sns":
                sns = session.client("sns", endpoint_url=self._endpoint_url)
                sns.publish(TopicArn=target_arn, Message=json.dumps(event), MessageAttributes=attributes)
            else:
                sqs = session.client("sqs", endpoint_url=self._endpoint_url)
                queue_url = sqs.get_queue_url(QueueName=arn.resource_id, QueueOwnerAWSAccountId=arn.account)
                sqs.send_message(
                    QueueUrl=queue_url["QueueUrl"], MessageBody=json.dumps(event), MessageAttributes=attributes
                )
        except ClientError:
            pass  # Lambda counts it (DeadLetterErrors) and the event is lost

    def _run(self, spec: _Function, event: Any, request_id: str | None = None) -> dict:
        pool = self._pool(spec)
        request = {"event": event, "request_id": request_id or str(uuid.uuid4()), "invoked_function_arn": spec.arn}
        try:
            worker = pool.acquire()
        except _Failure as failure:
            return {"error": failure.payload}
        timeout = spec.timeout * self._timeout_scale
        try:
            return worker.invoke({**request, "timeout_ms": int(timeout * 1000)}, timeout, spec.timeout)
        except _Failure as failure:
            return {"error": failure.payload}
        finally:
            pool.release(worker)

    def _start_worker(self, spec: _Function) -> _Worker:
        code_dir = self._extract(spec.code)
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "TZ": "UTC",
            **dict(spec.environment),
            "LAMBDA_TASK_ROOT": str(code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": self._endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self._dynamodb_endpoint_url,  # its own process (``table_process``)
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            # Nothing from the developer's own AWS setup (profiles, real credentials) may leak in.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            # Active tracing needs the X-Ray daemon Lambda runs beside a function; the local cloud has none.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        server = self._fork_server(interpreter_for(spec.runtime))
        if self._log_dir is None:
            return _Worker(server.start(code_dir, spec.handler, environment, subprocess.DEVNULL))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log_dir / f"{spec.name}.log", "a", encoding="utf-8") as log:
            return _Worker(server.start(code_dir, spec.handler, environment, log))

    def _fork_server(self, interpreter: Interpreter) -> _ForkServer:
        """The interpreter's fork server, started on its first worker (and again after ``_reap`` stopped it)."""
        with self._lock:
            server = self._fork_servers.get(interpreter.path)
            if server is None or not server.alive:
                libraries = [] if interpreter.is_own else [LIBRARIES]
                server = self._fork_servers[interpreter.path] = _ForkServer(interpreter.path, libraries)
            return server

    def _extract(self, code: bytes) -> Path:
        """Unzip a deployment package once, into a directory named by its content."""
        code_dir = self._workdir / "code" / hashlib.sha256(code).hexdigest()[:16]
        with self._lock:
            if not code_dir.exists():
                partial = code_dir.with_suffix(".partial")
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(partial)
                partial.rename(code_dir)
        return code_dir


def _on_failure_destination(function: Any) -> str | None:
    """The function's on-failure destination (its EventInvokeConfig), where it is an EventBridge bus."""
    for config in function.event_invoke_config:
        destination = config.config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination and parse_arn(destination).service == "events":
            return str(destination)
    return None


def _describe(function: Any) -> _Function:
    return _Function(
        arn=function.function_arn,
        name=function.function_name,
        version=str(function.version),
        region=function.region,
        handler=function.handler,
        runtime=function.run_time or "",
        timeout=float(function.timeout),
        memory=int(function.memory_size),
        environment=tuple(sorted((key, str(value)) for key, value in (function.environment_vars or {}).items())),
        code=function.code_bytes,
    )
