"""The local demo: the whole saga on the embedded local cloud, with no AWS account and no Docker.

It synthesizes the CDK app, deploys the template and Lambda code into the local
cloud, loads the sample catalog, then books one trip that is confirmed and one
forced (by chaos) to fail at payment, and prints each one's path step by step
with the tables before and after.
"""

import tempfile
from pathlib import Path

from booking_saga.services import reference_trip
from saga.bookings import Outcome, start_booking, wait_for
from saga.catalog import SAMPLE_CATALOG, load_catalog, seed
from saga.deployment import DEFAULT_STACK, find_deployment
from saga.localcloud import LocalCloud
from saga.output import Printer
from saga.synth import synthesize

BOOKINGS = (
    ("trip-0001", {}, "a trip that is confirmed"),
    ("trip-0002", {"chaos": {"fail_at": "payment"}}, "a trip forced to fail at payment"),
)
EXPECTED = ["confirmed", "compensated"]


def run_demo(printer: Printer) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="saga-demo-") as workdir:
        with printer.progress("Synthesizing the CDK app (app.py, as `cdk synth` would)"):
            assembly = synthesize(Path(workdir) / "cdk.out")
        with LocalCloud() as cloud:
            with printer.progress(f"Deploying {DEFAULT_STACK} into the local cloud at {cloud.endpoint_url}"):
                cloud.deploy(assembly, DEFAULT_STACK)
            deployment = find_deployment(DEFAULT_STACK, endpoint_url=cloud.endpoint_url)
            loaded = seed(deployment, load_catalog(SAMPLE_CATALOG))
            printer.line(f"Loaded {len(loaded.changes)} flights and hotels from {SAMPLE_CATALOG.name}")
            printer.line()
            printer.tables(deployment, "Tables before")
            outcomes = []
            for booking_id, extra, title in BOOKINGS:
                printer.line()
                printer.line(printer.paint(f"Booking {booking_id}: {title}", "bold"))
                start_booking(deployment, reference_trip(booking_id) | extra)
                outcome = wait_for(deployment, booking_id)
                printer.outcome(outcome)
                outcomes.append(outcome)
            printer.line()
            printer.tables(deployment, "Tables after")
    return outcomes
