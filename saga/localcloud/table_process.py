"""DynamoDB served by a process of its own, so the local cloud can use a second core.

A Python process runs on one core at a time (the GIL), and the local cloud's process answers every request a
booking makes: its start, the interpreter's Lambda invocations and the handlers' DynamoDB requests. So the local
cloud forks a second process as it starts, moto and every patch in place, that serves DynamoDB alone:

- the Lambda workers call it directly (``AWS_ENDPOINT_URL_DYNAMODB``), as do ``LocalCloud.client("dynamodb")`` and a
  ``Deployment`` found with its ``dynamodb_endpoint_url``;
- any other caller still uses the one endpoint, which forwards DynamoDB's requests here (``DynamoDBForwarder``);
- CloudFormation creates and deletes each table in both: in the first process, where its Ref and GetAtt are
  resolved, and here, where it is read and written (``mirror``);
- the transactions in progress, their window and the requests they refused live here (``transaction_window``,
  ``refused``).

It is forked before the local cloud starts a thread, and ends when the pipe to it closes: when the local cloud
closes, or its process ends.
"""

import gc
import http.client
import multiprocessing
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_api import recorder
from moto.moto_server.werkzeug_app import BackendRequest
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from saga.localcloud.moto_patches import MotoServer, TransactionHolds

START_TIMEOUT_SECONDS = 30
# Headers that describe one hop's connection, not the message (RFC 9110, section 7.6.1).
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_RESENT = _HOP_BY_HOP | {"host", "content-length"}  # a forwarded request's, which http.client sets anew
# moto's response classes by the X-Amz-Target prefix of the requests they answer.
_HANDLERS = {"DynamoDB_20120810": DynamoHandler, "DynamoDBStreams_20120810": DynamoDBStreamsHandler}


class TableProcess:
    """The forked process serving DynamoDB, a context manager; ``endpoint_url`` is where it listens.

    ``patched()`` is entered in the child before it serves: the local cloud's moto patches
    (``moto_patches.applied``), so DynamoDB answers there as it would in the local cloud's own process, with
    ``transactions`` holding the items of the transactions in progress.
    """

    def __init__(self, patched: Callable[[], AbstractContextManager[Any]], transactions: TransactionHolds):
        self._patched = patched
        self._transactions = transactions
        self._connection: Connection | None = None
        self._process: BaseProcess | None = None
        self._lock = threading.Lock()
        self.endpoint_url = ""

    def __enter__(self) -> "TableProcess":
        # The two processes share every page of the heap until one writes to it; a collection in this one would
        # write to every object it looks at, so the objects both hold are left out of this one's collections too.
        gc.freeze()
        ours, theirs = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve,
            args=(theirs, ours, self._patched, self._transactions),
            name="localcloud-dynamodb",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._connection = ours
        try:
            if not ours.poll(START_TIMEOUT_SECONDS):
                raise RuntimeError(f"the DynamoDB process did not start within {START_TIMEOUT_SECONDS} s")
            self.endpoint_url = self._answer(ours.recv())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        gc.unfreeze()
        if self._connection is not None:
            self._connection.close()  # the child's end of file: it stops serving and exits
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()

    def mirror(self, method: str, resource_name: str, cloudformation_json: dict, account_id: str, region: str) -> None:
        """Create or delete a table here as moto's CloudFormation did (``method`` is its Table classmethod)."""
        self._call("cloudformation", method, resource_name, cloudformation_json, account_id, region)

    @property
    def transaction_window(self) -> float:
        return self._call("transaction_window")

    @transaction_window.setter
    def transaction_window(self, seconds: float) -> None:
        self._call("transaction_window", seconds)

    def refused(self) -> dict[str, int]:
        return self._call("refused")

    def _call(self, *request: Any) -> Any:
        if self._connection is None:
            raise RuntimeError("the DynamoDB process is not running")
        with self._lock:
            try:
                self._connection.send(request)
                reply = self._connection.recv()
            except (EOFError, OSError):
                raise RuntimeError("the local cloud's DynamoDB process has ended") from None
        return self._answer(reply)

    @staticmethod
    def _answer(reply: tuple[str, Any]) -> Any:
        outcome, value = reply
        if outcome == "error":
            raise value
        return value


def refuse_lambdas(function: Any, body: Any, headers: Any, response_headers: dict) -> bytes:
    """The DynamoDB process's Lambda invoker: it serves DynamoDB only, so no Invoke request reaches it."""
    raise RuntimeError("the local cloud's DynamoDB process runs no Lambda functions")


def _serve(
    connection: Connection,
    parents_end: Connection,
    patched: Callable[[], AbstractContextManager[Any]],
    transactions: TransactionHolds,
) -> None:
    """The child: serve DynamoDB on a free port, and the parent's requests on ``connection`` until it closes."""
    parents_end.close()  # inherited: kept open here, the parent closing its own would never end this process
    gc.freeze()  # the parent's objects stay shared: a collection would write to every one of them
    try:
        with patched():
            server = MotoServer(ip_address="127.0.0.1", port=0, verbose=False, middleware=DynamoDBApp)
            server.start()
            for account in dynamodb_backends.values():  # no table the parent's moto held when it forked
                account.reset()
            dynamodb_backends.clear()
            connection.send(("ok", f"http://127.0.0.1:{server.get_host_and_port()[1]}"))
            while True:
                try:
                    request = connection.recv()
                except EOFError:
                    break
                connection.send(_handle(request, transactions))
            # No shutdown: the process ends as this returns, its server thread with it.
    except BaseException as error:
        connection.send(("error", RuntimeError(f"the DynamoDB process failed: {error!r}")))
        raise


def _handle(request: tuple, transactions: TransactionHolds) -> tuple[str, Any]:
    action, *arguments = request
    try:
        if action == "cloudformation":
            method, *resource = arguments
            getattr(Table, method)(*resource)
            return "ok", None
        if action == "transaction_window":
            if arguments:
                transactions.window = arguments[0]
            return "ok", transactions.window
        if action == "refused":
            return "ok", transactions.refused()
        raise ValueError(f"unknown request {action!r}")
    except Exception as error:  # moto's exceptions do not all survive pickling: their text does
        return "error", RuntimeError(f"{type(error).__name__}: {error}")


def _dynamodb_handler(environ: dict) -> type | None:
    """moto's response class for a DynamoDB request, told apart by its X-Amz-Target; None for any other."""
    return _HANDLERS.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])


class DynamoDBApp:
    """The DynamoDB process's WSGI app: a DynamoDB request goes straight to moto's handler, as moto's own view
    hands it over (recorded; a ClientError answered with a 400, an HTTPException with itself), without the
    routing that a server of every service needs (Flask's and moto's: about a tenth of the process's CPU).
    Any other request (moto's API, its recorder) goes to ``app``."""

    def __init__(self, app):
        self._app = app

    def __call__(self, environ, start_response):
        handler = _dynamodb_handler(environ)
        if handler is None:
            return self._app(environ, start_response)
        request = BackendRequest(environ)
        recorder._record_request(request)
        try:
            status, headers, body = handler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as error:
            status, headers, body = 400, {}, error.response["Error"]["Message"]
        except HTTPException as error:  # moto's errors raised outside its own catch, answered as Flask would
            return error(environ, start_response)
        return Response(body, status, headers)(environ, start_response)


class DynamoDBForwarder:
    """WSGI middleware: hands a DynamoDB request (told apart by its X-Amz-Target) to the DynamoDB process, and
    every other request to ``app``. The answer goes back as the DynamoDB process gave it."""

    def __init__(self, app, endpoint_url: str):
        self._app = app
        self._address = endpoint_url.removeprefix("http://")
        self._connections = threading.local()  # one kept-alive connection per server thread

    def __call__(self, environ, start_response):
        if _dynamodb_handler(environ) is None:
            return self._app(environ, start_response)
        request = Request(environ)
        status, reason, response_headers, answer = self._forward(request)
        start_response(f"{status} {reason}", _passed_on(response_headers, environ["SERVER_SOFTWARE"]))
        return [answer]

    def _forward(self, request: Request) -> tuple[int, str, list, bytes]:
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            connection = self._connections.connection = http.client.HTTPConnection(self._address, timeout=300)
        body = request.get_data()
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _RESENT}
        headers["Content-Length"] = str(len(body))
        try:
            connection.request(request.method, request.environ["RAW_URI"], body, headers)  # as the client sent it
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        except Exception:
            connection.close()  # the next request opens a fresh one; this one fails, as a dropped connection does
            self._connections.connection = None
            raise


def _passed_on(headers: Iterable[tuple[str, str]], server_software: str) -> list[tuple[str, str]]:
    """The DynamoDB process's answer as the one endpoint sends it on: without the hop's headers, nor the date and
    the server line that process's HTTP server sent of its own, which this endpoint's server sends too
    (``BaseHTTPRequestHandler.send_response``); its Content-Length kept, so the answer is not chunked."""
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in _HOP_BY_HOP | {"date"}
        and not (name.lower() == "server" and value.partition(" ")[0] == server_software)
    ]
