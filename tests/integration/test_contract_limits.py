"""The contract's bounds, executed on the local cloud on a development and a protected stage: an oversized
booking, or one with chaos where chaos is off, ends in ``InvalidBooking`` (a 400 from the API) before anything
is written. Once, such a booking took seats and then failed the execution with ``States.DataLimitExceeded``,
which no catch sees: seats held for good."""

import json

import pytest

from booking_saga.contract import MAX_BOOKING_BYTES
from saga.deployment import find_deployment
from saga.synth import cached_assembly
from tests.factories import booking
from tests.integration.executions import raw_execution


@pytest.fixture(scope="module")
def stages(cloud, deployment, tmp_path_factory) -> dict:
    """The development stack, and a protected stage (`prd`: chaos off) deployed beside it."""
    assembly = cached_assembly(context={"stage": "prd"})
    cloud.deploy(assembly, "BookingSaga-prd")
    return {"dev": deployment, "prd": find_deployment("BookingSaga-prd", endpoint_url=cloud.endpoint_url)}


def padded(booking_id: str, size: int) -> dict:
    """A booking whose compact JSON is exactly ``size`` bytes, the excess in a long customer id."""
    document = booking(booking_id)
    document["customer_id"] = ""
    base = len(json.dumps(document, separators=(",", ":")).encode())
    document["customer_id"] = "c" * (size - base)
    return document


def tables(deployment) -> dict:
    return {service: deployment.ledger(service).contents() for service in deployment.tables}


@pytest.mark.parametrize("stage", ["dev", "prd"])
@pytest.mark.parametrize(
    ("size", "problem"),
    [
        (MAX_BOOKING_BYTES + 1, f"booking must be at most {MAX_BOOKING_BYTES} bytes of JSON, not"),
        (200 * 1024, f"booking must be at most {MAX_BOOKING_BYTES} bytes of JSON, not"),
        (MAX_BOOKING_BYTES, "customer_id must be 1-64 characters"),  # within the limit, refused for its field
    ],
)
def test_an_oversized_booking_is_refused_before_anything_is_written(stages, stage, size, problem):
    deployment = stages[stage]
    document = padded(f"big-{stage}-{size}", size)
    before = tables(deployment)

    execution = raw_execution(deployment, document["booking_id"], document)
    answer = deployment.api().create(document)

    assert (execution["status"], execution["error"]) == ("FAILED", "InvalidBooking")
    assert problem in json.loads(execution["cause"])["errorMessage"]
    assert answer.status == 400
    assert tables(deployment) == before


@pytest.mark.parametrize("chaos", [{"fail_at": "payment"}, {"duplicate": ["flight.reserve"] * 2000}, {}])
def test_chaos_is_refused_where_it_is_off_and_bounded_where_it_is_on(stages, chaos):
    protected, development = stages["prd"], stages["dev"]
    document = booking(f"chaos-bounds-{len(json.dumps(chaos))}", chaos=chaos)
    before = tables(protected), tables(development)

    on_protected = raw_execution(protected, document["booking_id"], document)
    on_development = raw_execution(development, document["booking_id"], document)

    assert (on_protected["status"], on_protected["error"]) == ("FAILED", "InvalidBooking")
    assert protected.api().create(document).status == 400
    if chaos.get("duplicate"):  # a 2,000-entry list: over the size limit, and a function listed twice
        assert (on_development["status"], on_development["error"]) == ("FAILED", "InvalidBooking")
    else:
        assert on_development["status"] in ("FAILED", "SUCCEEDED")
    assert tables(protected) == before[0]
