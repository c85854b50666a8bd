"""The local cloud's Lambda execution environments: a fork server, and the warm workers it forks.

The local cloud starts the fork server as ``python -I lambda_worker.py <socket fd> [<libraries>...]``, so it imports
nothing of this project, only the handler's libraries (boto3, Powertools) from the interpreter's own environment or,
on another interpreter, from the given directories. It imports what every handler imports (``PRELOADED``) once,
and reads botocore's models for the services they call (``CALLED``), then forks one worker per request read from
the socket: a worker starts in milliseconds, where importing boto3 and Powertools takes about 150 ms of CPU and a
first client 45 ms more.

A worker is one warm execution environment of one function. It takes the function's environment, puts the deployed
code first on ``sys.path``, imports the handler (the init phase, as Lambda runs it in a new environment) and speaks
JSON lines: the first line it writes reports the init, then one response line per request line read from stdin.
Its own stdout and stderr (the handler's prints and logs) go wherever the local cloud pointed stderr: a log file or
nowhere.
"""

import contextlib
import importlib
import json
import os
import socket
import sys
import threading
import time
import traceback

# What every handler imports first: the fork server imports it once for all the workers it forks.
PRELOADED = ("boto3", "aws_lambda_powertools.logging", "aws_lambda_powertools.metrics")
# The AWS services the handlers call: what botocore reads to make their clients (service models, endpoint rules,
# about 45 ms of JSON) is read once by the fork server, and every worker's default session reads it from there.
CALLED = ("dynamodb", "stepfunctions", "sqs", "lambda", "events")


class Context:
    """The parts of Lambda's context object handlers use."""

    def __init__(self, request: dict):
        self.aws_request_id = request["request_id"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = request["invoked_function_arn"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + request["timeout_ms"] / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error(error_type: str, message: str, stack: list[str] | None = None) -> dict:
    return {"error": {"errorType": error_type, "errorMessage": message, "stackTrace": stack or []}}


def load_handler(handler: str):
    module_name, _, function_name = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:
        return None, error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
    function = getattr(module, function_name, None)
    if not callable(function):
        return None, error("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return function, {"ready": True}


def invoke(function, request: dict) -> dict:
    context = Context(request)
    try:
        result = function(request["event"], context)
    except Exception as exc:
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
        return error(type(exc).__name__, str(exc), stack)
    try:
        return {"result": json.dumps(result)}
    except (TypeError, ValueError) as exc:
        return error("Runtime.MarshalError", f"Unable to marshal response: {exc}")


def run(code_dir: str, handler: str) -> None:
    """A worker: import the handler, report the init, then answer each request line until stdin closes."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the handler's prints join its logs, never the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)

    def reply(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    function, status = load_handler(handler)
    reply(status)
    if function is None:
        return
    for line in sys.stdin:
        reply(invoke(function, json.loads(line)))
        sys.stdout.flush()
        sys.stderr.flush()


def serve_forks(control: socket.socket, libraries: list[str]) -> None:
    """Import ``PRELOADED``, then per request (a JSON line naming the code dir, the handler and the environment,
    sent with the worker's stdin, stdout and stderr) fork a worker and answer ``{"forked": pid}``; answer
    ``{"exited": pid, "status": code}`` when one ends. Returns when the local cloud closes its end."""
    sys.path.extend(libraries)  # after the standard library, as Lambda puts its layers and its boto3
    for module in PRELOADED:
        with contextlib.suppress(ImportError):  # a handler that needs it reports the import error itself
            importlib.import_module(module)
    models = _read_models()
    answering = threading.Lock()
    children = threading.Semaphore(0)

    def answer(message: dict) -> None:
        with answering:
            control.sendall((json.dumps(message) + "\n").encode())

    def reap() -> None:
        while True:
            children.acquire()
            pid, status = os.wait()
            answer({"exited": pid, "status": os.waitstatus_to_exitcode(status)})

    threading.Thread(target=reap, daemon=True).start()
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 3)
        if not message:
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            control.close()
            _become_worker(request, fds, models)
        for fd in fds:
            os.close(fd)
        children.release()
        answer({"forked": pid})


def _read_models():
    """botocore's loader, having read what the clients of ``CALLED`` need (or None). The clients are
    made with placeholder settings and thrown away: only what the loader read is kept, which is the same files
    whatever the environment."""
    try:
        import boto3
        import botocore.session

        core = botocore.session.Session()
        session = boto3.Session(
            aws_access_key_id="-", aws_secret_access_key="-", region_name="us-east-1", botocore_session=core
        )
        session.resource("dynamodb")
        for service in CALLED:
            session.client(service)
    except Exception:  # no boto3, or a configuration it refuses: each worker reads the models itself, as before
        return None
    return core.get_component("data_loader")


def _become_worker(request: dict, fds: list[int], models) -> None:
    """In a forked child: take the passed stdin, stdout and stderr and the function's environment, run the worker,
    and exit with the status an interpreter would have ended with. The default boto3 session is made now, from
    this environment, as a handler's first client would make it, and reads botocore's models from ``models``."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["environment"])
    if models is not None:
        import boto3
        import botocore.session

        core = botocore.session.Session()
        core.register_component("data_loader", models)
        boto3.setup_default_session(botocore_session=core)
    status = 0
    try:
        run(request["code_dir"], request["handler"])
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            status = exit.code or 0
        else:  # sys.exit("message"): printed, and status 1
            print(exit.code, file=sys.stderr)
            status = 1
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


if __name__ == "__main__":
    serve_forks(socket.socket(fileno=int(sys.argv[1])), sys.argv[2:])
