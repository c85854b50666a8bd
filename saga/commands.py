"""The `saga` program: one function per command, from parsed arguments to an exit status.

Each command calls the library (``saga.bookings``, ``saga.api``, ``saga.chaos``, ...) for the work and
hands its result to ``Output`` with the lines that render it (``saga.render``); none of them prints.
The argument spec and the error mapping are in ``saga.cli``.
"""

import secrets
import signal
import threading
from argparse import Namespace
from enum import IntEnum
from pathlib import Path

from booking_saga.contract import parse_booking_id
from booking_saga.designs import ATOMIC, CHOREOGRAPHY, DESIGNS
from booking_saga.executions import Outcome
from booking_saga.services import reference_trip
from saga import render
from saga.audit import audit as audit_tables
from saga.bookings import outcome_of, recent_bookings, start_booking, wait_for
from saga.catalog import load_catalog
from saga.catalog import seed as load_into
from saga.chaos import run_chaos
from saga.deployment import DEFAULT_STACK, Deployment, find_deployment
from saga.designs import find_design, stock
from saga.recovery import replay_dead_letters
from saga.render import Output


class ExitStatus(IntEnum):
    OK = 0
    FAILED = 1  # the booking did not end confirmed, a check failed, the tables drifted
    ERROR = 2  # bad input or a broken environment: one line on stderr, nothing done
    INTERRUPTED = 130  # Ctrl-C


class Failure(Exception):
    """A user-facing error: one line, no traceback, exit 2."""


def _status(ok: bool) -> ExitStatus:
    return ExitStatus.OK if ok else ExitStatus.FAILED


def _deployment(args: Namespace) -> Deployment:
    return find_deployment(args.stack, args.endpoint_url, args.region, args.profile, args.services)


def demo(args: Namespace, out: Output) -> ExitStatus:
    from saga.demo import EXPECTED, run_demo  # imports the local cloud (moto) only when needed

    outcomes = run_demo(out)
    out.result({"bookings": [outcome.to_json() for outcome in outcomes]}, [])
    return _status([outcome.verdict for outcome in outcomes] == EXPECTED)


def local_up(args: Namespace, out: Output) -> ExitStatus:
    from saga.localcloud import LocalCloud
    from saga.synth import cached_assembly

    catalog = load_catalog(args.catalog, args.services)  # a bad catalog fails before anything slow starts
    with out.progress("Synthesizing the CDK app (cached while unchanged)"):
        assembly = cached_assembly()
    window = {} if args.transaction_window is None else {"transaction_window": args.transaction_window}
    with LocalCloud(args.port, args.wait_scale, args.timeout_scale, args.log_dir, args.keep_warm, **window) as cloud:
        with out.progress(f"Deploying {DEFAULT_STACK} into the local cloud"):
            outputs = cloud.deploy(assembly, DEFAULT_STACK)
        for interpreter in cloud.interpreters:
            out.note(interpreter.describe())
        deployment = find_deployment(
            DEFAULT_STACK,
            endpoint_url=cloud.endpoint_url,
            services=args.services,
            dynamodb_endpoint_url=cloud.dynamodb_endpoint_url,
        )
        loaded = load_into(deployment, catalog)
        for design in (CHOREOGRAPHY, ATOMIC):  # the same trip, the other two ways (saga ... --design)
            with out.progress(f"Deploying {DESIGNS[design].stack} into the local cloud"):
                cloud.deploy(assembly, DESIGNS[design].stack)
            stock(find_design(design, endpoint_url=cloud.endpoint_url, services=args.services), catalog)
        stop = threading.Event()
        for signal_number in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: background jobs ignore it
            signal.signal(signal_number, lambda *_: stop.set())
        out.note(f"Loaded {len(loaded.changes)} flights and hotels from {args.catalog} into each design")
        document = {
            "endpoint_url": cloud.endpoint_url,
            "api_url": deployment.api_url,
            "stack": DEFAULT_STACK,
            "outputs": outputs,
        }
        out.result(document, render.local_cloud(out, cloud.endpoint_url, deployment.api_url, outputs), one_line=True)
        while not stop.wait(0.5):
            pass
        out.note("Stopping the local cloud.")
    return ExitStatus.OK


def seed(args: Namespace, out: Output) -> ExitStatus:
    catalog = load_catalog(args.catalog, args.services)
    loaded = load_into(_deployment(args), catalog)
    document = {"stack": args.stack, "catalog": str(args.catalog), **loaded.to_json()}
    out.result(document, render.loaded(out, loaded, str(args.catalog), args.stack))
    return ExitStatus.OK


def book(args: Namespace, out: Output) -> ExitStatus:
    booking_id = _booking_id(args, "trip")  # a bad one is refused before the stack is looked for
    deployment = _deployment(args)
    document = _booking_from(args, booking_id, deployment)
    if args.api:
        api = deployment.api()
        accepted, outcome = api.book(document)
        execution_arn = outcome.execution_arn
    else:
        started = start_booking(deployment, document)
        accepted, execution_arn = started.accepted, started.execution_arn
    if not accepted:
        out.note(f"booking {booking_id} already exists with these details: nothing new started")
    if not args.wait:
        how = " --api" if args.api else ""
        out.result(
            {"booking_id": booking_id, "execution_arn": execution_arn, "verdict": "running"},
            [f"started booking {booking_id}: saga status{how} {booking_id}"],
        )
        return ExitStatus.OK
    with out.progress(f"Booking {booking_id}" + (f" through {deployment.api_url}" if args.api else "")):
        if args.api:
            outcome = deployment.api().wait_for(booking_id, timeout=args.timeout)
        else:
            outcome = wait_for(deployment, booking_id, timeout=args.timeout)
    out.result(outcome.to_json(), render.path(out, outcome))
    return _status(outcome.verdict == "confirmed")


def _booking_id(args: Namespace, prefix: str) -> str:
    """The --booking-id given (an empty or malformed one is refused), or a new one."""
    if args.booking_id is None:
        return f"{prefix}-{secrets.token_hex(4)}"
    return parse_booking_id(args.booking_id)


def _booking_from(args: Namespace, booking_id: str, deployment: Deployment) -> dict:
    """The booking the flags describe, checked against the deployment's contract before anything starts."""
    document = {"booking_id": booking_id, "customer_id": args.customer_id}
    for service in deployment.contract.services:
        document[service.name] = {name: getattr(args, f"{service.name}.{name}") for name in service.fields}
    chaos = {key: value for key, value in (("fail_at", args.fail_at), ("fail_cancel", args.fail_cancel)) if value}
    if chaos:
        _require_chaos(args, deployment)
        document["chaos"] = chaos
    deployment.contract.parse(document)
    return document


def _require_chaos(args: Namespace, deployment: Deployment) -> None:
    if not deployment.contract.chaos_enabled:
        raise Failure(f"chaos is off in stack {args.stack}: it would book a real trip; nothing was booked")


def _outcome(args: Namespace) -> Outcome:
    deployment = _deployment(args)
    if getattr(args, "api", False):
        return deployment.api().outcome(args.booking_id)
    return outcome_of(deployment, args.booking_id)


def status(args: Namespace, out: Output) -> ExitStatus:
    outcome = _outcome(args)
    out.result(render.status_json(outcome), render.status(out, outcome))
    return ExitStatus.OK


def history(args: Namespace, out: Output) -> ExitStatus:
    outcome = _outcome(args)
    out.result(outcome.to_json(), render.history(out, outcome))
    return ExitStatus.OK


def list_bookings(args: Namespace, out: Output) -> ExitStatus:
    listed = recent_bookings(_deployment(args), args.limit)
    out.result([summary.to_json() for summary in listed], render.summaries(out, listed))
    return ExitStatus.OK


def chaos(args: Namespace, out: Output) -> ExitStatus:
    booking_id = _booking_id(args, f"chaos-{args.fail_at}")  # a bad one is refused before anything starts
    deployment = _deployment(args)
    _require_chaos(args, deployment)
    with out.progress(f"Booking {booking_id}, forced to fail at {args.fail_at}"):
        report = run_chaos(deployment, reference_trip(booking_id, args.services), args.fail_at, timeout=args.timeout)
    out.result(report.to_json(), render.chaos(out, report))
    return _status(report.passed)


def replay(args: Namespace, out: Output) -> ExitStatus:
    done = replay_dead_letters(_deployment(args), args.limit)
    out.result([item.to_json() for item in done], render.replays(out, done))
    # An end the reconciler parked again is finished where the dead-letter pass, which comes after, finished it.
    last_word = {item.execution_arn: item.finished for item in done}
    return _status(all(last_word.values()))


def audit(args: Namespace, out: Output) -> ExitStatus:
    deployment = _deployment(args)
    with out.progress(f"Auditing {args.stack}"):
        report = audit_tables(deployment)
    out.result(report.to_json(), render.audit(out, report))
    return _status(report.clean)


def graph(args: Namespace, out: Output) -> ExitStatus:
    from saga import graph as diagrams

    deployment = _deployment(args)
    definition = deployment.definition()
    path = outcome_of(deployment, args.booking_id).path if args.booking_id else None
    if args.format == "mermaid":
        text = diagrams.to_mermaid(definition, path)
        if args.output:
            _write(args.output, text.encode())
        else:
            out.stdout.write(text)
        return ExitStatus.OK
    try:
        image = diagrams.render(diagrams.to_dot(definition, path), args.format)
    except diagrams.GraphvizMissing as error:
        raise Failure(str(error)) from None
    if args.output:
        _write(args.output, image)
    elif out.stdout.isatty():
        raise Failure(f"{args.format} is binary: pass --output FILE or redirect stdout")
    else:
        out.stdout.buffer.write(image)
    return ExitStatus.OK


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise Failure(f"cannot write {path}: {error.strerror}") from None
