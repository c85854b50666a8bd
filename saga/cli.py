"""`saga`: one command line for the booking saga, the same on the local cloud and on AWS.

The target is the local cloud when an endpoint is given (``--endpoint-url`` or
``AWS_ENDPOINT_URL``), else AWS through the normal credential chain. The stack
is always found by its name, through its CloudFormation outputs.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from booking_saga.contract import InvalidBooking, parse_booking_id
from booking_saga.services import SERVICES, reference_trip
from saga.api import ApiError, ApiResponse
from saga.bookings import DuplicateBooking, UnknownBooking, outcome_of, recent_bookings, start_booking, wait_for
from saga.catalog import SAMPLE_CATALOG, InvalidCatalog, load_catalog, seed
from saga.chaos import FAIL_AT, run_chaos
from saga.deployment import DEFAULT_STACK, SagaNotFound, find_deployment
from saga.output import VERDICT_STYLES, Printer
from saga.recovery import replay_dead_letters

DEFAULT_PORT = 4599


API_HELP = "go through the stack's HTTP API (IAM-signed requests) rather than Step Functions"


class Failure(Exception):
    """A user-facing error: one line, no traceback."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `saga graph | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (InvalidBooking, InvalidCatalog) as error:
        return _fail(f"invalid input: {error}")
    except (SagaNotFound, UnknownBooking, DuplicateBooking, ApiError, Failure) as error:
        return _fail(str(error))
    except EndpointConnectionError as error:
        return _fail(f"cannot reach {error.kwargs.get('endpoint_url')}: is the endpoint up (`saga local up`)?")
    except NoCredentialsError:
        return _fail("no AWS credentials found: configure them (aws configure, AWS_PROFILE) or pass --endpoint-url")
    except NoRegionError:
        return _fail("no AWS region set: pass --region or set AWS_REGION")
    except ProfileNotFound as error:
        return _fail(str(error))
    except ClientError as error:
        details = error.response["Error"]
        return _fail(f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}")
    except BotoCoreError as error:
        return _fail(str(error))


def _fail(message: str) -> int:
    print(f"saga: error: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    target = argparse.ArgumentParser(add_help=False)
    where = target.add_argument_group("target (the local cloud when an endpoint is given, else AWS)")
    where.add_argument("--stack", default=DEFAULT_STACK, help="stack name (default: %(default)s)")
    where.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="a local cloud, e.g. http://127.0.0.1:4599 (default: $AWS_ENDPOINT_URL)",
    )
    where.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    where.add_argument("--profile", help="AWS profile")
    reporting = argparse.ArgumentParser(add_help=False)
    reporting.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")

    parser = argparse.ArgumentParser(prog="saga", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", parents=[reporting], help="the saga on an embedded local cloud: one trip confirmed, one undone"
    )
    demo.set_defaults(run=_demo)

    local = commands.add_parser("local", help="the local cloud as a long-running endpoint")
    local_commands = local.add_subparsers(title="commands", required=True, metavar="COMMAND")
    up = local_commands.add_parser("up", parents=[reporting], help="deploy the stack locally and serve until Ctrl-C")
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="on 127.0.0.1; 0: any free one (default: %(default)s)"
    )
    up.add_argument("--catalog", type=Path, default=SAMPLE_CATALOG, help="inventory to load (default: the sample)")
    up.add_argument(
        "--wait-scale", type=_positive_float, default=1.0, help="multiply retry waits (default: 1, real time)"
    )
    up.add_argument(
        "--timeout-scale", type=_positive_float, default=1.0, help="multiply timeouts (default: 1, real time)"
    )
    up.add_argument("--log-dir", type=Path, help="write each function's logs to DIR/<function>.log")
    up.set_defaults(run=_local_up)

    seed_command = commands.add_parser("seed", parents=[target, reporting], help="load inventory from a catalog")
    seed_command.add_argument("catalog", nargs="?", type=Path, default=SAMPLE_CATALOG, help="default: the sample")
    seed_command.set_defaults(run=_seed)

    book = commands.add_parser("book", parents=[target, reporting], help="book a trip (start one saga)")
    book.add_argument("--booking-id", help="the idempotency key, used once (default: a new trip-… id)")
    _add_trip_flags(book)
    book.add_argument("--fail-at", choices=FAIL_AT, help="chaos: force this reserve step to fail")
    book.add_argument("--fail-cancel", choices=FAIL_AT, help="chaos: force this service's cancel to fail")
    book.add_argument("--wait", action="store_true", help="wait for the outcome; exit 1 unless confirmed")
    book.add_argument("--timeout", type=_positive_float, default=300, help="seconds to wait (default: %(default)s)")
    book.add_argument("--api", action="store_true", help=API_HELP)
    book.set_defaults(run=_book)

    for name, run, description in (
        ("status", _status, "how a booking ended (or that it is still running)"),
        ("history", _history, "each state of a booking: duration, attempts, error and cause"),
    ):
        command = commands.add_parser(name, parents=[target, reporting], help=description)
        command.add_argument("booking_id")
        if name == "status":
            command.add_argument("--api", action="store_true", help=API_HELP)
        command.set_defaults(run=run)

    listing = commands.add_parser("list", parents=[target, reporting], help="recent bookings and how they ended")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default: %(default)s)")
    listing.set_defaults(run=_list)

    chaos = commands.add_parser(
        "chaos", parents=[target, reporting], help="the chaos test: force a step to fail, verify nothing stays held"
    )
    chaos.add_argument("--fail-at", choices=FAIL_AT, required=True)
    chaos.add_argument("--booking-id", help="default: a new chaos-… id")
    chaos.add_argument("--timeout", type=_positive_float, default=600, help="seconds to wait (default: %(default)s)")
    chaos.set_defaults(run=_chaos)

    replay = commands.add_parser(
        "replay", parents=[target, reporting], help="finish parked compensations: replay the dead-letter queue"
    )
    replay.add_argument("--limit", type=int, default=10, help="at most this many messages (default: %(default)s)")
    replay.set_defaults(run=_replay)

    audit_command = commands.add_parser(
        "audit",
        parents=[target, reporting],
        help="check the tables against the executions: stock balances, no leaked holds; exit 1 on drift",
    )
    audit_command.set_defaults(run=_audit)

    graph = commands.add_parser("graph", parents=[target], help="the state machine as a diagram, with a booking's path")
    graph.add_argument("booking_id", nargs="?", help="highlight this booking's path")
    graph.add_argument("--format", choices=("mermaid", "svg", "png"), default="mermaid")
    graph.add_argument("--output", type=Path, help="write to FILE (svg and png need one unless piped)")
    graph.set_defaults(run=_graph)
    return parser


_FLAG_TYPES = {"id": str, "units": int, "currency": str}  # and amounts, parsed by _amount


def _add_trip_flags(book: argparse.ArgumentParser) -> None:
    """A flag for every field of the booking, defaulting to the reference trip's: ``--customer-id``, then per
    service its id field as ``--<service>`` (``--flight NH101``) and its other fields by name (``--seats 2``)."""
    trip = reference_trip("")
    book.add_argument("--customer-id", default=trip["customer_id"])
    for service in SERVICES:
        for name, kind in service.fields.items():
            flag = f"--{service.name}" if kind == "id" else f"--{name.replace('_', '-')}"
            book.add_argument(
                flag,
                dest=f"{service.name}.{name}",
                type=_FLAG_TYPES.get(kind, _amount),
                default=trip[service.name][name],
                help=f"{service.name}.{name} (default: %(default)s)",
            )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _amount(text: str) -> int | float:
    """An amount as JSON carries it: whole amounts stay integers."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    return int(value) if value.is_integer() and "." not in text else value


def _deployment(args):
    return find_deployment(args.stack, args.endpoint_url, args.region, args.profile)


def _emit(document: object) -> None:
    print(json.dumps(document, indent=2, default=str))


def _printer(args) -> Printer:
    """People's output; with --json it goes to stderr so stdout carries only the JSON."""
    return Printer(sys.stderr if getattr(args, "json", False) else sys.stdout)


def _demo(args) -> int:
    from saga.demo import EXPECTED, run_demo  # imports the local cloud (moto) only when needed
    from saga.synth import SynthError

    try:
        outcomes = run_demo(_printer(args))
    except SynthError as error:
        raise Failure(str(error)) from None
    if args.json:
        _emit({"bookings": [outcome.to_json() for outcome in outcomes]})
    return 0 if [outcome.verdict for outcome in outcomes] == EXPECTED else 1


def _local_up(args) -> int:
    from saga.localcloud import LocalCloud, LocalCloudError
    from saga.synth import SynthError, synthesize

    printer = _printer(args)
    catalog = load_catalog(args.catalog)  # a bad catalog fails before anything slow starts
    try:
        with tempfile.TemporaryDirectory(prefix="saga-local-") as workdir:
            with printer.progress("Synthesizing the CDK app"):
                assembly = synthesize(Path(workdir) / "cdk.out")
            cloud = LocalCloud(args.port, args.wait_scale, args.timeout_scale, args.log_dir)
            with cloud:
                with printer.progress(f"Deploying {DEFAULT_STACK} into the local cloud"):
                    outputs = cloud.deploy(assembly, DEFAULT_STACK)
                deployment = find_deployment(DEFAULT_STACK, endpoint_url=cloud.endpoint_url)
                count = len(seed(deployment, catalog).changes)
                stop = threading.Event()
                for signal_number in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: background jobs ignore it
                    signal.signal(signal_number, lambda *_: stop.set())
                _announce(args, printer, deployment, outputs, count)
                while not stop.wait(0.5):
                    pass
                printer.line("Stopping the local cloud.")
    except (SynthError, LocalCloudError) as error:
        raise Failure(str(error)) from None
    return 0


def _announce(args, printer: Printer, deployment, outputs: dict, count: int) -> None:
    endpoint_url = deployment.endpoint_url
    if args.json:
        print(
            json.dumps(
                {
                    "endpoint_url": endpoint_url,
                    "api_url": deployment.api_url,
                    "stack": DEFAULT_STACK,
                    "outputs": outputs,
                }
            ),
            flush=True,
        )
    printer.line(f"Loaded {count} flights and hotels from {args.catalog}")
    printer.line()
    printer.line(printer.paint(f"The local cloud is up at {endpoint_url}", "bold"))
    printer.table(["output", "value"], sorted(outputs.items()))
    printer.line(f"The booking API is served at {deployment.api_url} (POST bookings, GET bookings/<id>)")
    printer.line()
    printer.line(f"  export AWS_ENDPOINT_URL={endpoint_url}   # then: saga book --wait [--api], saga list, aws ...")
    printer.line("Press Ctrl-C to stop.")


def _seed(args) -> int:
    catalog = load_catalog(args.catalog)
    loaded = seed(_deployment(args), catalog)
    if args.json:
        _emit({"stack": args.stack, "catalog": str(args.catalog), **loaded.to_json()})
    else:
        print(f"loaded {len(loaded.changes)} inventory items from {args.catalog} into {args.stack}: {loaded.summary()}")
    return 0


def _booking_from(args, deployment) -> dict:
    """The booking the flags describe, checked against the deployment's contract before anything starts."""
    document = {"booking_id": _booking_id(args, "trip"), "customer_id": args.customer_id}
    for service in SERVICES:
        document[service.name] = {name: getattr(args, f"{service.name}.{name}") for name in service.fields}
    chaos = {key: value for key, value in (("fail_at", args.fail_at), ("fail_cancel", args.fail_cancel)) if value}
    if chaos:
        _require_chaos(args, deployment)
        document["chaos"] = chaos
    deployment.contract.parse(document)
    return document


def _booking_id(args, prefix: str) -> str:
    """The --booking-id given (an empty or malformed one is refused), or a new one."""
    if args.booking_id is None:
        return f"{prefix}-{secrets.token_hex(4)}"
    return parse_booking_id(args.booking_id)


def _require_chaos(args, deployment) -> None:
    if not deployment.contract.chaos_enabled:
        raise Failure(f"chaos is off in stack {args.stack}: it would book a real trip; nothing was booked")


def _book(args) -> int:
    if args.booking_id is not None:
        parse_booking_id(args.booking_id)  # before looking for the stack
    deployment = _deployment(args)
    document = _booking_from(args, deployment)
    if args.api:
        return _book_through_api(args, deployment, document)
    started = start_booking(deployment, document)
    if not started.accepted:
        _printer(args).line(f"booking {started.booking_id} already exists with these details: nothing new started")
    if not args.wait:
        if args.json:
            _emit({"booking_id": started.booking_id, "execution_arn": started.execution_arn, "verdict": "running"})
        else:
            print(f"started booking {document['booking_id']}: saga status {document['booking_id']}")
        return 0
    printer = _printer(args)
    with printer.progress(f"Booking {document['booking_id']}"):
        outcome = wait_for(deployment, document["booking_id"], timeout=args.timeout)
    if args.json:
        _emit(outcome.to_json())
    else:
        printer.outcome(outcome)
    return 0 if outcome.verdict == "confirmed" else 1


def _book_through_api(args, deployment, document: dict) -> int:
    api = deployment.api()
    booking = _accepted(api.create(document), 202, 200)
    if args.wait:
        deadline = time.monotonic() + args.timeout
        with _printer(args).progress(f"Booking {document['booking_id']} through {api.url}"):
            while booking["status"] == "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.2)
                booking = _accepted(api.get(document["booking_id"]), 200)
    if args.json:
        _emit({key: value for key, value in booking.items() if key != "path"})
    elif args.wait:
        _print_status(_printer(args), booking)
    else:
        print(f"started booking {document['booking_id']} through {api.url}: saga status --api {document['booking_id']}")
    return 0 if booking["verdict"] == "confirmed" or not args.wait else 1


def _accepted(response: ApiResponse, *expected: int) -> dict:
    """The booking the API answered with, or a one-line failure saying what it answered instead."""
    if response.status in expected:
        return response.body
    message = response.body.get("message", response.body)
    if response.status == 400:
        raise InvalidBooking(message)
    raise Failure(f"the booking API answered {response.status}: {message}")


def _status(args) -> int:
    deployment = _deployment(args)
    if args.api:
        response = deployment.api().get(args.booking_id)
        if response.status == 404:
            raise UnknownBooking(response.body.get("message", f"no booking {args.booking_id}"))
        booking = _accepted(response, 200)
    else:
        booking = outcome_of(deployment, args.booking_id).to_json()
    if args.json:
        _emit({key: value for key, value in booking.items() if key != "path"})
    else:
        _print_status(_printer(args), booking)
    return 0


def _print_status(printer: Printer, booking: dict) -> None:
    """How a booking stands, from its JSON form (Step Functions' and the HTTP API's are the same)."""
    printer.line(f"{booking['booking_id']}: {printer.verdict(booking['verdict'])}")
    failed = next((step for step in booking["path"] if step["name"] == booking["failed_step"]), None)
    if failed is not None:
        printer.line(f"  failed at {failed['name']}: {failed['error']}: {failed['cause']}")
    if booking["compensations"]:
        printer.line(f"  compensated by {', '.join(booking['compensations'])}")
    if booking["verdict"] == "compensation failed":
        printer.line(f"  {booking['cause']}")


def _history(args) -> int:
    outcome = outcome_of(_deployment(args), args.booking_id)
    if args.json:
        _emit(outcome.to_json())
        return 0
    printer = _printer(args)
    printer.line(f"{outcome.booking_id}: {printer.verdict(outcome.verdict)}")
    rows = [
        (
            step.name,
            step.state_type,
            f"{step.seconds:.2f} s" if step.seconds is not None else "running",
            step.attempts or "",
            step.error or "",
            (step.message or "")[:100],
        )
        for step in outcome.path
    ]
    styles = ["fail" if step.failed else None for step in outcome.path]
    printer.table(["state", "type", "duration", "attempts", "error", "cause"], rows, styles)
    return 0


def _list(args) -> int:
    summaries = recent_bookings(_deployment(args), args.limit)
    if args.json:
        _emit([summary.to_json() for summary in summaries])
        return 0
    if not summaries:
        print("no bookings yet")
        return 0
    printer = _printer(args)
    rows = [
        (s.booking_id, s.verdict, s.error or "", s.started.strftime("%Y-%m-%d %H:%M:%S"), _duration(s))
        for s in summaries
    ]
    styles = [None if s.verdict == "confirmed" else VERDICT_STYLES.get(s.verdict, "fail") for s in summaries]
    printer.table(["booking", "outcome", "error", "started", "took"], rows, styles)
    return 0


def _duration(summary) -> str:
    return f"{(summary.stopped - summary.started).total_seconds():.1f} s" if summary.stopped else ""


def _chaos(args) -> int:
    booking_id = _booking_id(args, f"chaos-{args.fail_at}")  # a bad one is refused before anything starts
    deployment = _deployment(args)
    _require_chaos(args, deployment)
    document = reference_trip(booking_id)
    printer = _printer(args)
    with printer.progress(f"Booking {booking_id}, forced to fail at {args.fail_at}"):
        report = run_chaos(deployment, document, args.fail_at, timeout=args.timeout)
    if args.json:
        _emit(report.to_json())
    else:
        printer.outcome(report.outcome)
        printer.line()
        for check in report.checks:
            mark = printer.paint("✓", "ok") if check.passed else printer.paint("✗", "fail")
            printer.line(f"  {mark} {check.name}: {check.detail}")
        verdict = "PASSED: nothing stays reserved or charged" if report.passed else "FAILED"
        printer.line(f"Chaos test {printer.paint(verdict, 'ok' if report.passed else 'fail')}")
    return 0 if report.passed else 1


def _replay(args) -> int:
    replays = replay_dead_letters(_deployment(args), args.limit)
    if args.json:
        _emit([replay.to_json() for replay in replays])
    elif not replays:
        print("the dead-letter queue is empty: no compensation is parked")
    else:
        printer = _printer(args)
        for replay in replays:
            if replay.finished:
                released = [cancel["step"] for cancel in replay.cancels if cancel.get("released")]
                done = f"released by {', '.join(released)}" if released else "nothing was still held"
                printer.line(f"{printer.paint('✓', 'ok')} {replay.booking_id}: compensation finished, {done}")
            else:
                printer.line(f"{printer.paint('✗', 'fail')} {replay.booking_id}: still parked, {replay.error}")
    return 0 if all(replay.finished for replay in replays) else 1


def _audit(args) -> int:
    from saga.audit import audit

    deployment = _deployment(args)
    with _printer(args).progress(f"Auditing {args.stack}"):
        report = audit(deployment)
    if args.json:
        _emit(report.to_json())
        return 0 if report.clean else 1
    printer = _printer(args)
    printer.table(
        ["service", "resource", "capacity", "held", "available", "balanced"],
        [
            (s.service, s.resource_id, s.capacity, s.held, s.available, "yes" if s.balanced else "NO")
            for s in report.stocks
        ],
        ["fail" if not s.balanced else None for s in report.stocks],
    )
    printer.line(
        f"{report.reserved} reservations held, each by a running or confirmed execution unless listed below; "
        f"{report.confirmed} confirmed bookings checked"
    )
    if report.parked:
        printer.line(f"{len(report.parked)} held by bookings parked for a person (saga replay finishes them)")
    if report.unverified:
        printer.line(f"{len(report.unverified)} held by executions Step Functions no longer keeps (not checked)")
    for drift in report.drift:
        printer.line(printer.paint(f"  ✗ {drift.check}: {drift.service} {drift.subject}: {drift.detail}", "fail"))
    verdict = "CLEAN: every promise holds" if report.clean else f"DRIFT: {len(report.drift)} broken"
    printer.line(f"Audit {printer.paint(verdict, 'ok' if report.clean else 'fail')}")
    return 0 if report.clean else 1


def _graph(args) -> int:
    from saga import graph

    deployment = _deployment(args)
    definition = deployment.definition()
    path = outcome_of(deployment, args.booking_id).path if args.booking_id else None
    if args.format == "mermaid":
        text = graph.to_mermaid(definition, path)
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    try:
        image = graph.render(graph.to_dot(definition, path), args.format)
    except graph.GraphvizMissing as error:
        raise Failure(str(error)) from None
    if args.output:
        args.output.write_bytes(image)
    elif sys.stdout.isatty():
        raise Failure(f"{args.format} is binary: pass --output FILE or redirect stdout")
    else:
        sys.stdout.buffer.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
