"""`saga`: one command line for the booking saga, the same on the local cloud and on AWS.

The target is the local cloud when an endpoint is given (``--endpoint-url`` or
``AWS_ENDPOINT_URL``), else AWS through the normal credential chain. The stack
is always found by its name, through its CloudFormation outputs.

This module is the argument spec, the table of commands and the mapping of
errors to one line and an exit status; the commands themselves are in
``saga.commands``, what they show in ``saga.render``.
"""

import argparse
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from booking_saga.contract import InvalidBooking
from booking_saga.designs import DESIGNS, ORCHESTRATION
from booking_saga.executions import DuplicateBooking, UnknownBooking
from booking_saga.services import SERVICES, Service, reference_trip
from saga import commands, design_commands, engines
from saga.api import ApiError
from saga.catalog import SAMPLE_CATALOG, InvalidCatalog
from saga.commands import ExitStatus, Failure
from saga.deployment import DEFAULT_STACK, SagaNotFound
from saga.render import Output

DEFAULT_PORT = 4599
API_HELP = "go through the stack's HTTP API (IAM-signed requests) rather than Step Functions"


class _Parser(argparse.ArgumentParser):
    """Argument errors as every other error: one line, exit 2, and where to read more."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitStatus.ERROR, f"saga: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None, out: Output | None = None, services: tuple[Service, ...] = SERVICES) -> int:
    """Run one command; ``services``: the saga's, as ``booking_saga.services`` lists them."""
    args = parser(services).parse_args(argv)
    out = out or Output(json_mode=getattr(args, "json", False))
    try:
        return int(args.run(args, out))
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # `saga graph | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitStatus.OK
    except Exception as error:
        message = _message(error)
        if message is None:
            raise
        out.error(message)
        return ExitStatus.ERROR


def run() -> None:
    """The `saga` command and ``python -m saga``: ``main``, then exit without tearing the interpreter down.

    Every command has closed what it opened by then (a local cloud and its workers, files); what is left is
    the interpreter freeing its objects one by one, which after a local cloud (moto's models) takes a second.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader has gone (`saga list | head`): what is left unwritten has no reader
        pass
    os._exit(code)


def _message(error: Exception) -> str | None:
    """The one line a user sees for an error they can act on; None for a bug (its traceback is worth seeing)."""
    from saga.localcloud import LocalCloudError
    from saga.synth import SynthError

    if isinstance(error, InvalidBooking | InvalidCatalog):
        return f"invalid input: {error}"
    if isinstance(error, SagaNotFound | UnknownBooking | DuplicateBooking | ApiError | Failure):
        return str(error)
    if isinstance(error, SynthError | LocalCloudError):
        return str(error)
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach {error.kwargs.get('endpoint_url')}: is the endpoint up (`saga local up`)?"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: configure them (aws configure, AWS_PROFILE) or pass --endpoint-url"
    if isinstance(error, NoRegionError):
        return "no AWS region set: pass --region or set AWS_REGION"
    if isinstance(error, ClientError):
        details = error.response["Error"]
        return f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}"
    if isinstance(error, ProfileNotFound | BotoCoreError):
        return str(error)
    return None


# ---------------------------------------------------------------- argument types: named for their messages


def _positive(kind: type) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return int(text)


def _endpoint(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"must be a URL such as http://127.0.0.1:{DEFAULT_PORT}, not {text!r}")
    return text


def _amount(text: str) -> int | float:
    """An amount as JSON carries it: whole amounts stay integers."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return int(value) if value.is_integer() and "." not in text else value


def _writable_directory(text: str) -> Path:
    """A directory that exists, or can be made, and can be written to: checked before anything starts."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".saga-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write to {text}: {error.strerror}") from None
    return path


_FLAG_TYPES: dict[str, Callable[[str], object]] = {"id": str, "units": int, "currency": str, "amount": _amount}


# ---------------------------------------------------------------- the argument spec


def parser(services: tuple[Service, ...] = SERVICES) -> argparse.ArgumentParser:
    target = _Parser(add_help=False)
    where = target.add_argument_group("target (the local cloud when an endpoint is given, else AWS)")
    where.add_argument("--stack", default=DEFAULT_STACK, help="stack name (default: %(default)s)")
    where.add_argument(
        "--endpoint-url",
        type=_endpoint,
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help=f"a local cloud, e.g. http://127.0.0.1:{DEFAULT_PORT} (default: $AWS_ENDPOINT_URL)",
    )
    where.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    where.add_argument("--profile", help="AWS profile")
    reporting = _Parser(add_help=False)
    reporting.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")

    root = _Parser(prog="saga", description=__doc__.splitlines()[0])
    root.add_argument("--version", action="version", version=f"saga {_version()}")
    groups = {"": root.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=_Parser)}
    shared = {"target": target, "reporting": reporting}
    for name, (run, description, add_arguments, parents) in COMMANDS.items():
        word, _, last = name.rpartition(" ")  # "local up": the command up of the command word local
        if word not in groups:
            group = groups[""].add_parser(word, help=GROUPS[word])
            groups[word] = group.add_subparsers(
                title="commands", required=True, metavar="COMMAND", parser_class=_Parser
            )
        command = groups[word].add_parser(last, parents=[shared[p] for p in parents], help=description)
        add_arguments(command, services)
        command.set_defaults(run=run, services=services)
    return root


def _version() -> str:
    try:
        return version("booking-saga")
    except PackageNotFoundError:
        return "unknown"


def _no_arguments(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    del command, services


def _local_up_arguments(up: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    up.add_argument("--port", type=_port, default=DEFAULT_PORT, help="on 127.0.0.1; 0: any free one (%(default)s)")
    up.add_argument("--catalog", type=Path, default=SAMPLE_CATALOG, help="inventory to load (default: the sample)")
    up.add_argument(
        "--wait-scale", type=_positive(float), default=1.0, help="multiply retry waits (default: 1, real time)"
    )
    up.add_argument(
        "--timeout-scale", type=_positive(float), default=1.0, help="multiply timeouts (default: 1, real time)"
    )
    up.add_argument("--log-dir", type=_writable_directory, help="write each function's logs to DIR/<function>.log")
    up.add_argument(
        "--keep-warm",
        type=_positive(float),
        default=60.0,
        metavar="SECONDS",
        help="stop a function's worker idle this long, freeing its memory (default: %(default)s)",
    )
    up.add_argument(
        "--transaction-window",
        type=_not_negative,
        help="seconds a DynamoDB transaction holds its items against other writers; 0: no conflicts (default: 0.005)",
    )


def _seed_arguments(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    command.add_argument("catalog", nargs="?", type=Path, default=SAMPLE_CATALOG, help="default: the sample")


def _book_arguments(book: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    names = [service.name for service in services]
    book.add_argument("--booking-id", help="the idempotency key, used once (default: a new trip-… id)")
    _add_trip_flags(book, services)
    book.add_argument("--fail-at", choices=names, help="chaos: force this reserve step to fail")
    book.add_argument("--fail-cancel", choices=names, help="chaos: force this service's cancel to fail")
    book.add_argument("--wait", action="store_true", help="wait for the outcome; exit 1 unless confirmed")
    book.add_argument("--timeout", type=_positive(float), default=300, help="seconds to wait (default: %(default)s)")
    book.add_argument("--api", action="store_true", help=API_HELP)
    book.add_argument(
        "--engine",
        choices=engines.ENGINES,
        default="stepfunctions",
        help="alsf: run it on the local cloud's second Step Functions interpreter, with --wait (default: %(default)s)",
    )


def _add_trip_flags(book: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    """A flag for every field of the booking, defaulting to the reference trip's: ``--customer-id``, then per
    service its id field as ``--<service>`` (``--flight NH101``) and its other fields by name (``--seats 2``)."""
    trip = reference_trip("", services)
    book.add_argument("--customer-id", default=trip["customer_id"])
    for service in services:
        for name, kind in service.fields.items():
            book.add_argument(
                f"--{service.name}" if kind == "id" else f"--{name.replace('_', '-')}",
                dest=f"{service.name}.{name}",
                type=_FLAG_TYPES[kind],
                default=trip[service.name][name],
                help=f"{service.name}.{name} (default: %(default)s)",
            )


def _booking_id_argument(api: bool) -> "AddArguments":
    def add(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
        command.add_argument("booking_id")
        if api:
            command.add_argument("--api", action="store_true", help=API_HELP)

    return add


def _list_arguments(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    command.add_argument("--limit", type=_positive(int), default=20, help="at most this many (default: %(default)s)")


def _chaos_arguments(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    command.add_argument("--fail-at", choices=[service.name for service in services], required=True)
    command.add_argument("--booking-id", help="default: a new chaos-… id")
    command.add_argument("--timeout", type=_positive(float), default=600, help="seconds to wait (default: %(default)s)")


def _replay_arguments(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    command.add_argument(
        "--limit", type=_positive(int), default=10, help="at most this many messages (default: %(default)s)"
    )


def _graph_arguments(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
    command.add_argument("booking_id", nargs="?", help="highlight this booking's path")
    command.add_argument("--format", choices=("mermaid", "svg", "png"), default="mermaid")
    command.add_argument("--output", type=Path, help="write to FILE (svg and png need one unless piped)")


def _designed(add_arguments: "AddArguments") -> "AddArguments":
    """The command's arguments and ``--design``: which of the trip's designs (``booking_saga.designs``) it acts on."""

    def add(command: argparse.ArgumentParser, services: tuple[Service, ...]) -> None:
        add_arguments(command, services)
        command.add_argument(
            "--design", choices=list(DESIGNS), default=ORCHESTRATION, help="which design's stack (default: %(default)s)"
        )

    return add


def _by_design(orchestrated: Callable[..., ExitStatus], other: Callable[..., ExitStatus]) -> Callable[..., ExitStatus]:
    """The orchestrated design's command, or the other designs' (``saga.design_commands``)."""

    def run(args: argparse.Namespace, out: Output) -> ExitStatus:
        return orchestrated(args, out) if args.design == ORCHESTRATION else other(args, out)

    return run


GROUPS = {"local": "the local cloud as a long-running endpoint"}  # command words with commands of their own
AddArguments = Callable[[argparse.ArgumentParser, tuple[Service, ...]], None]
# name: (the command, its help, its arguments, the shared argument groups it takes)
COMMANDS: dict[str, tuple[Callable[..., ExitStatus], str, AddArguments, tuple[str, ...]]] = {
    "demo": (
        commands.demo,
        "the saga on an embedded local cloud: one trip confirmed, one undone",
        _no_arguments,
        ("reporting",),
    ),
    "local up": (
        commands.local_up,
        "deploy the stack locally and serve until Ctrl-C",
        _local_up_arguments,
        ("reporting",),
    ),
    "seed": (commands.seed, "load or restock inventory from a catalog", _seed_arguments, ("target", "reporting")),
    "book": (
        _by_design(engines.book, design_commands.book),
        "book a trip (start one saga)",
        _designed(_book_arguments),
        ("target", "reporting"),
    ),
    "status": (
        _by_design(commands.status, design_commands.status),
        "how a booking ended (or that it is still running)",
        _designed(_booking_id_argument(api=True)),
        ("target", "reporting"),
    ),
    "history": (
        _by_design(commands.history, design_commands.history),
        "each state of a booking: duration, attempts, error and cause (choreography: each event of its saga log)",
        _designed(_booking_id_argument(api=False)),
        ("target", "reporting"),
    ),
    "list": (
        _by_design(commands.list_bookings, design_commands.list_bookings),
        "recent bookings and how they ended",
        _designed(_list_arguments),
        ("target", "reporting"),
    ),
    "chaos": (
        _by_design(commands.chaos, design_commands.chaos),
        "the chaos test: force a step to fail, verify nothing stays held",
        _designed(_chaos_arguments),
        ("target", "reporting"),
    ),
    "replay": (
        _by_design(commands.replay, design_commands.replay),
        "finish parked compensations: replay the dead-letter queue",
        _designed(_replay_arguments),
        ("target", "reporting"),
    ),
    "audit": (
        _by_design(commands.audit, design_commands.audit),
        "check the tables against the executions (or saga logs): stock balances, no leaked holds; exit 1 on drift",
        _designed(_no_arguments),
        ("target", "reporting"),
    ),
    "graph": (
        _by_design(commands.graph, design_commands.graph),
        "the state machine as a diagram, with a booking's path (choreography: its event flow, as Mermaid)",
        _designed(_graph_arguments),
        ("target",),
    ),
}


if __name__ == "__main__":
    sys.exit(main())
