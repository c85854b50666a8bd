"""`saga ... --design choreography|atomic`: book, status, history, list, chaos and audit on the other designs'
stacks (``saga.designs``), with the orchestrated saga's verdicts and chaos rules. What they show is plain lines
or, with ``--json``, the same documents."""

import time
from argparse import Namespace
from typing import Any

from booking_saga.choreography import cancelled_event, compensation_chain, failed_event
from booking_saga.designs import CHOREOGRAPHY
from booking_saga.ledger import CANCELLED
from booking_saga.services import reference_trip
from saga import render
from saga.chaos import Check
from saga.commands import ExitStatus, Failure, _booking_id, _write
from saga.deployment import DEFAULT_STACK
from saga.designs import DesignDeployment, Ending, find_design
from saga.render import Output

POLL_SECONDS = 0.2


def _design(args: Namespace) -> DesignDeployment:
    """The design's stack on the stage ``--stack`` names (``BookingSaga-production``: ``production``)."""
    stage = "dev" if args.stack == DEFAULT_STACK else args.stack.removeprefix(f"{DEFAULT_STACK}-")
    return find_design(args.design, stage, args.endpoint_url, args.region, args.profile, args.services)


def _ending_json(design: DesignDeployment, ending: Ending) -> dict[str, Any]:
    return {
        "design": design.design,
        "booking_id": ending.booking_id,
        "instance": ending.instance,
        "verdict": ending.verdict,
        "status": ending.status,
        "error": ending.error,
        "cause": ending.cause,
    }


def _ending_lines(ending: Ending) -> list[str]:
    lines = [f"booking {ending.booking_id}: {ending.verdict}"]
    if ending.error:
        lines.append(f"  {ending.error}: {ending.cause}")
    return lines


def wait(design: DesignDeployment, booking_id: str, timeout: float) -> Ending:
    """The booking's ending once it is no longer running; ``Failure`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (ending := design.ending(booking_id)).status == "RUNNING":
        if time.monotonic() > deadline:
            raise Failure(f"booking {booking_id} still running after {timeout:g} s: saga status {booking_id}")
        time.sleep(POLL_SECONDS)
    return ending


def book(args: Namespace, out: Output) -> ExitStatus:
    if args.api or args.engine != "stepfunctions":
        raise Failure(f"--api and --engine are the orchestrated design's: the {args.design} design has neither")
    booking_id = _booking_id(args, "trip")
    design = _design(args)
    document: dict[str, Any] = {"booking_id": booking_id, "customer_id": args.customer_id}
    for service in design.contract.services:
        document[service.name] = {name: getattr(args, f"{service.name}.{name}") for name in service.fields}
    chaos = {key: value for key, value in (("fail_at", args.fail_at), ("fail_cancel", args.fail_cancel)) if value}
    if chaos:
        if not design.contract.chaos_enabled:
            raise Failure(f"chaos is off in the {args.design} stack: it would book a real trip; nothing was booked")
        document["chaos"] = chaos
    design.contract.parse(document)
    instance = design.book(document)
    if not args.wait:
        out.result(
            {"design": design.design, "booking_id": booking_id, "instance": instance},
            [f"started booking {booking_id}: saga status --design {design.design} {booking_id}"],
        )
        return ExitStatus.OK
    with out.progress(f"Booking {booking_id} ({design.design})"):
        ending = wait(design, booking_id, args.timeout)
    out.result(_ending_json(design, ending), _ending_lines(ending))
    return ExitStatus.OK if ending.verdict == "confirmed" else ExitStatus.FAILED


def status(args: Namespace, out: Output) -> ExitStatus:
    if args.api:
        raise Failure(f"--api is the orchestrated design's: the {args.design} design has no HTTP API")
    design = _design(args)
    ending = design.ending(args.booking_id)
    out.result(_ending_json(design, ending), _ending_lines(ending))
    return ExitStatus.OK


def history(args: Namespace, out: Output) -> ExitStatus:
    design = _design(args)
    entries = design.history(args.booking_id)
    if design.design == CHOREOGRAPHY:
        lines = [f"{entry['seq']:>3} {entry['at']} {entry['event']}" for entry in entries]
    else:
        lines = [f"{key}: {value}" for entry in entries for key, value in sorted(entry.items())]
    out.result({"design": design.design, "booking_id": args.booking_id, "history": entries}, lines)
    return ExitStatus.OK


def list_bookings(args: Namespace, out: Output) -> ExitStatus:
    design = _design(args)
    registry = design.registry().table
    items, page = [], {"ConsistentRead": True}
    while True:
        response = registry.scan(**page)
        items += [item for item in response["Items"] if item["pk"].startswith("booking#")]
        if "LastEvaluatedKey" not in response:
            break
        page["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    recent = sorted(items, key=lambda item: str(item.get("accepted_at")), reverse=True)[: args.limit]
    endings = [design.ending(str(item["booking_id"])) for item in recent]
    out.result(
        [_ending_json(design, ending) for ending in endings],
        [f"{ending.booking_id:<24} {ending.verdict}" for ending in endings],
    )
    return ExitStatus.OK


def chaos(args: Namespace, out: Output) -> ExitStatus:
    """The orchestrated chaos test's rules: the booking ends undone (compensated; the atomic design: rolled back),
    failed by chaos at that step, its cancels in reverse order (choreography), nothing held, stock back."""
    booking_id = _booking_id(args, f"chaos-{args.fail_at}")
    design = _design(args)
    if not design.contract.chaos_enabled:
        raise Failure(f"chaos is off in the {args.design} stack: it would book a real trip; nothing was booked")
    document = {**reference_trip(booking_id, args.services), "chaos": {"fail_at": args.fail_at}}
    before = _available(design, document)
    with out.progress(f"Booking {booking_id} ({design.design}), forced to fail at {args.fail_at}"):
        design.book(document)
        ending = wait(design, booking_id, args.timeout)
    undone = "compensated" if design.design == CHOREOGRAPHY else "rolled back"
    checks = [
        Check(f"the booking was {undone}", ending.verdict == undone, f"ended {ending.verdict} ({ending.error})"),
        Check(
            f"the {args.fail_at} step failed by chaos",
            ending.error == "ChaosFailure" and f"chaos.fail_at={args.fail_at}" in (ending.cause or ""),
            f"{ending.error}: {ending.cause}",
        ),
    ]
    if design.design == CHOREOGRAPHY:
        checks.append(_cancels_in_reverse(design, booking_id, args.fail_at))
    held = [
        service.name
        for service in design.contract.services
        if (design.ledger(service.name).record(booking_id) or {"status": CANCELLED})["status"] != CANCELLED
    ]
    checks.append(Check("nothing stays reserved or charged", not held, f"held by {', '.join(held) or 'none'}"))
    after = _available(design, document)
    checks.append(Check("seats and rooms are back on sale", after == before, f"{before} before, {after} after"))
    passed = all(check.passed for check in checks)
    document_out = {"passed": passed, "checks": [check.to_json() for check in checks], **_ending_json(design, ending)}
    lines = [f"  {'✓' if check.passed else '✗'} {check.name}: {check.detail}" for check in checks]
    out.result(document_out, [*lines, f"Chaos test {'PASSED' if passed else 'FAILED'}"])
    return ExitStatus.OK if passed else ExitStatus.FAILED


def _cancels_in_reverse(design: DesignDeployment, booking_id: str, fail_at: str) -> Check:
    services = design.contract.services
    failing = next(service for service in services if service.name == fail_at)
    events = [entry["event"] for entry in design.history(booking_id)]
    start = events.index(failed_event(failing)) + 1 if failed_event(failing) in events else len(events)
    expected = [
        cancelled_event(next(service for service in services if service.cancel_state == step))
        for step in compensation_chain(failing.reserve_state, services)[:-1]
    ] + ["BookingFailed"]
    ran = events[start:]
    return Check("the cancels ran in reverse order", ran == expected, f"ran {' → '.join(ran) or 'nothing'}")


def _available(design: DesignDeployment, booking: dict[str, Any]) -> dict[str, int | None]:
    return {
        f"{service.name} {booking[service.name][service.capacity.resource]}": design.ledger(service.name).available(
            booking[service.name][service.capacity.resource]
        )
        for service in design.contract.services
        if service.capacity
    }


def graph(args: Namespace, out: Output) -> ExitStatus:
    """The choreography's event flow as Mermaid, a booking's events highlighted."""
    from saga.graph import event_flow_mermaid

    if args.design != CHOREOGRAPHY:
        raise Failure("the atomic design is one transaction: there is no flow to draw")
    if args.format != "mermaid":
        raise Failure("the choreography's event flow is drawn as Mermaid only: drop --format")
    design = _design(args)
    seen = [entry["event"] for entry in design.history(args.booking_id)] if args.booking_id else None
    text = event_flow_mermaid(design.contract.services, seen)
    if args.output:
        _write(args.output, text.encode())
    else:
        out.stdout.write(text)
    return ExitStatus.OK


def replay(args: Namespace, out: Output) -> ExitStatus:
    if args.design != CHOREOGRAPHY:
        raise Failure("the atomic design parks nothing: its transaction writes all or nothing")
    done = _design(args).replay(args.limit)
    out.result([item.to_json() for item in done], render.replays(out, done))
    return ExitStatus.OK if all(item.finished for item in done) else ExitStatus.FAILED


def audit(args: Namespace, out: Output) -> ExitStatus:
    design = _design(args)
    with out.progress(f"Auditing the {design.design} design"):
        report = design.audit()
    out.result(report.to_json(), render.audit(out, report))
    return ExitStatus.OK if report.clean else ExitStatus.FAILED
