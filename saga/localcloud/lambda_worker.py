"""One warm Lambda execution environment: a process that imports one handler and runs it per request.

The local cloud starts it as ``python -I lambda_worker.py <code dir> <handler> [<libraries>...]``
with the function's environment, so it imports nothing of this project and sees
only the deployed code, as in Lambda, and the handler's libraries (boto3, Powertools) from the
interpreter's own environment or, on another interpreter, from the given directories.
It speaks JSON lines: the first line it writes reports the init phase (the handler's import),
then one response line per request line read from stdin. Its own stdout and stderr (the handler's prints
and logs) go wherever the parent pointed stderr: a log file or nowhere.
"""

import importlib
import json
import os
import sys
import time
import traceback


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


def main() -> None:
    code_dir, handler, *libraries = sys.argv[1:]
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the handler's prints join its logs, never the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.path.insert(0, code_dir)
    sys.path.extend(libraries)  # after the standard library, as Lambda puts its layers and its boto3
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


if __name__ == "__main__":
    main()
