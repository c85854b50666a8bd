"""The local demo: the whole saga on the embedded local cloud, with no AWS account and no Docker.

It synthesizes the CDK app, deploys the template and Lambda code into the local
cloud, loads the sample catalog, then books one trip that is confirmed and one
forced (by chaos) to fail at payment, and prints each one's path step by step
with the tables before and after.
"""

from booking_saga.services import reference_trip
from saga import render
from saga.bookings import Outcome, start_booking, wait_for
from saga.catalog import SAMPLE_CATALOG, load_catalog, seed
from saga.definition import functions
from saga.deployment import DEFAULT_STACK, find_deployment
from saga.localcloud import LocalCloud
from saga.render import Output
from saga.synth import cached_assembly

BOOKINGS: tuple[tuple[str, dict[str, object], str], ...] = (
    ("trip-0001", {}, "a trip that is confirmed"),
    ("trip-0002", {"chaos": {"fail_at": "payment"}}, "a trip forced to fail at payment"),
)
EXPECTED = ["confirmed", "compensated"]


def run_demo(out: Output) -> list[Outcome]:
    with out.progress("Synthesizing the CDK app (app.py, as `cdk synth` would; cached while unchanged)"):
        assembly = cached_assembly()
    with LocalCloud() as cloud:
        with out.progress(f"Deploying {DEFAULT_STACK} into the local cloud at {cloud.endpoint_url}"):
            cloud.deploy(assembly, DEFAULT_STACK)
        for interpreter in cloud.interpreters:
            out.note(interpreter.describe())
        deployment = find_deployment(
            DEFAULT_STACK, endpoint_url=cloud.endpoint_url, dynamodb_endpoint_url=cloud.dynamodb_endpoint_url
        )
        cloud.warm(functions(deployment.definition()))  # their cold starts overlap the seeding, not the bookings
        loaded = seed(deployment, load_catalog(SAMPLE_CATALOG))
        out.note(f"Loaded {len(loaded.changes)} flights and hotels from {SAMPLE_CATALOG.name}")
        out.note()
        _show(out, render.tables(out, _contents(deployment), "Tables before"))
        outcomes = []
        for booking_id, extra, title in BOOKINGS:
            out.note()
            out.note(out.paint(f"Booking {booking_id}: {title}", "bold"))
            start_booking(deployment, reference_trip(booking_id) | extra)
            outcome = wait_for(deployment, booking_id)
            _show(out, render.path(out, outcome))
            outcomes.append(outcome)
        out.note()
        _show(out, render.tables(out, _contents(deployment), "Tables after"))
    return outcomes


def _contents(deployment) -> dict[str, tuple[list[dict], list[dict]]]:
    return {service: deployment.ledger(service).contents() for service in deployment.tables}


def _show(out: Output, lines) -> None:
    for line in lines:
        out.note(line)
