"""The local demo: the whole saga on the embedded local cloud, with no AWS account and no Docker.

It synthesizes the CDK app, deploys the template and Lambda code into the local
cloud, loads the sample catalog, then books one trip that is confirmed and one
forced (by chaos) to fail at payment, and prints each one's path step by step
with the tables before and after. Run it with ``./dev demo``.
"""

import argparse
import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from saga.bookings import Outcome, start_booking, wait_for
from saga.catalog import SAMPLE_CATALOG, load_catalog, seed
from saga.deployment import DEFAULT_STACK, Deployment, find_deployment
from saga.localcloud import LocalCloud
from saga.synth import SynthError, synthesize

TRIP = {
    "customer_id": "c-42",
    "flight": {"flight_id": "NH101", "seats": 2},
    "hotel": {"hotel_id": "TOKYO-GRAND", "rooms": 1},
    "payment": {"amount": 84000, "currency": "JPY"},
}
_COLOURS = {"ok": "32", "fail": "31", "undo": "33", "dim": "2", "bold": "1"}


class Printer:
    """Plain text for pipes and logs, colour on a terminal."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.colour = stream.isatty()

    def paint(self, text: str, style: str) -> str:
        return f"\033[{_COLOURS[style]}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    @contextmanager
    def progress(self, what: str):
        """Slow phases (synth, deploy) say what they are doing and how long it took."""
        print(f"{what} ...", end="", file=self.stream, flush=True)
        started = time.monotonic()
        yield
        self.line(f" done in {time.monotonic() - started:.1f} s")

    def outcome(self, outcome: Outcome) -> None:
        failed, undone = outcome.failed_step, outcome.compensations
        for step in outcome.path:
            seconds = f"{step.seconds:6.2f} s" if step.seconds is not None else " " * 8
            retries = f"  ({step.attempts} attempts)" if step.attempts > 1 else ""
            if step is failed:
                message = _message(step.cause).removeprefix(f"{step.name}: ")
                mark, style, note = "✗", "fail", f"  {step.error}: {message}"
            elif step in undone:
                mark, style, note = "↶", "undo", "  compensation"
            elif step.state_type == "Fail":
                mark, style, note = "■", "fail", f"  {step.error}"
            else:
                mark, style, note = "✓", "ok", ""
            self.line(f"  {self.paint(mark, style)} {step.name:<22}{self.paint(seconds, 'dim')}{note}{retries}")
        style = {"confirmed": "ok", "compensated": "undo"}.get(outcome.verdict, "fail")
        self.line(f"  => {self.paint(outcome.verdict.upper(), style)}")

    def tables(self, deployment: Deployment, title: str) -> None:
        self.line(self.paint(title, "bold"))
        for service in ("flight", "hotel", "payment"):
            items = deployment.table(service).scan(ConsistentRead=True)["Items"]
            stock = [item for item in items if item["pk"].startswith("inventory#")]
            bookings = [item for item in items if item["pk"].startswith("booking#")]
            if stock:
                levels = ", ".join(
                    f"{i['resource_id']} {i['available']}/{i['capacity']}"
                    for i in sorted(stock, key=lambda i: i["resource_id"])
                )
                self.line(f"  {service:<8} available: {levels}")
            for item in sorted(bookings, key=lambda item: item["pk"]):
                held = f"{item.get('quantity', '')} {item.get('resource_id', '')}".strip()
                charge = f"{item.get('amount', '')} {item.get('currency', '')}".strip()
                what = held or charge or "nothing held"
                self.line(f"  {service:<8} {item['booking_id']:<22} {item['status']:<10} {what}")
            if not bookings:
                self.line(f"  {service:<8} (no bookings)")


def _message(cause: str | None) -> str:
    """Lambda errors arrive as a JSON cause; people want its message."""
    try:
        return json.loads(cause or "")["errorMessage"]
    except (ValueError, KeyError, TypeError):
        return cause or ""


def run_demo(printer: Printer) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="saga-demo-") as workdir:
        with printer.progress("Synthesizing the CDK app (app.py, as `cdk synth` would)"):
            assembly = synthesize(Path(workdir) / "cdk.out")
        with LocalCloud() as cloud:
            with printer.progress(f"Deploying {DEFAULT_STACK} into the local cloud at {cloud.endpoint_url}"):
                cloud.deploy(assembly, DEFAULT_STACK)
            deployment = find_deployment(DEFAULT_STACK, endpoint_url=cloud.endpoint_url)
            count = seed(deployment, load_catalog(SAMPLE_CATALOG))
            printer.line(f"Loaded {count} flights and hotels from {SAMPLE_CATALOG.name}")
            printer.line()
            printer.tables(deployment, "Tables before")
            outcomes = []
            for booking_id, extra, title in (
                ("trip-0001", {}, "a trip that is confirmed"),
                ("trip-0002", {"chaos": {"fail_at": "payment"}}, "a trip forced to fail at payment"),
            ):
                printer.line()
                printer.line(printer.paint(f"Booking {booking_id}: {title}", "bold"))
                start_booking(deployment, {"booking_id": booking_id, **TRIP, **extra})
                outcome = wait_for(deployment, booking_id)
                printer.outcome(outcome)
                outcomes.append(outcome)
            printer.line()
            printer.tables(deployment, "Tables after")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    printer = Printer()
    try:
        outcomes = run_demo(printer)
    except SynthError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    expected = ["confirmed", "compensated"]
    return 0 if [outcome.verdict for outcome in outcomes] == expected else 1


if __name__ == "__main__":
    sys.exit(main())
