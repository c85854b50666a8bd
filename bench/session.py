"""One local cloud for the benchmark: the app deployed, its inventory stocked, each execution's end reported."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.callers import Caller
from booking_saga.executions import start_booking
from booking_saga.ledger import Ledger
from booking_saga.services import reference_trip
from saga.deployment import DEFAULT_STACK, Deployment, find_deployment
from saga.localcloud import LocalCloud

# Retry waits at 1/1000: a compensation exhausting its 8 retries (about 4 minutes of waits on AWS)
# takes a quarter of a second, so waits never dominate a figure. Reported beside the figures.
WAIT_SCALE = 0.001
# Stretched timeouts: on a busy 2-core machine a queued invocation must not turn into a timeout.
TIMEOUT_SCALE = 10
STOCK = 10_000_000  # never sells out, however many bookings a run makes
EXECUTION_TIMEOUT_SECONDS = 120


class Finishes:
    """When each execution ended (``time.perf_counter``), as the local cloud reports it.

    Waiting on this instead of polling ``DescribeExecution`` keeps the poll interval and the
    polling load out of the latencies, which matters most for the bare interpreter's few milliseconds.
    """

    def __init__(self):
        self._ended: dict[str, float] = {}
        self._changed = threading.Condition()

    def __call__(self, execution_arn: str) -> None:
        with self._changed:
            self._ended[execution_arn] = time.perf_counter()
            self._changed.notify_all()

    def wait(self, execution_arn: str, timeout: float = EXECUTION_TIMEOUT_SECONDS) -> float:
        with self._changed:
            if not self._changed.wait_for(lambda: execution_arn in self._ended, timeout):
                raise TimeoutError(f"{execution_arn} did not finish within {timeout} s")
            return self._ended.pop(execution_arn)


def lane(number: int) -> tuple[str, str]:
    """The flight and the hotel a lane books (``deployed`` stocks them)."""
    return f"BENCH-FLIGHT-{number}", f"BENCH-HOTEL-{number}"


def booking(booking_id: str, chaos: dict | None = None, lane_number: int = 0) -> dict:
    """The reference trip, for one seat and one room on the flight and hotel of the benchmark's lane."""
    flight, hotel = lane(lane_number)
    document = reference_trip(booking_id) | {
        "flight": {"flight_id": flight, "seats": 1},
        "hotel": {"hotel_id": hotel, "rooms": 1},
    }
    return document | ({"chaos": chaos} if chaos else {})


@dataclass
class Session:
    cloud: LocalCloud
    deployment: Deployment
    finishes: Finishes
    stepfunctions: Any  # one boto3 client for every booking: creating one costs more than a bare execution
    assembly: Path
    lanes: int  # flights and hotels stocked, one per booking in flight (``deployed``)

    def book(self, document: dict, caller: Caller | None = None) -> tuple[float, str]:
        """Accept the booking and start the saga, as ``saga.bookings.start_booking`` does, here or in ``caller``'s
        process, and wait for its end: (seconds from the start request to the end, execution ARN)."""
        started = time.perf_counter()
        if caller is None:
            arn = start_booking(
                self.stepfunctions, self.deployment.registry(), self.deployment.state_machine_arn, document
            ).execution_arn
        else:
            arn = caller.start(document)
        return self.finishes.wait(arn) - started, arn

    def aim(self, callers: list[Caller]) -> None:
        """Have ``callers`` start their bookings on this session's deployment."""
        for caller in callers:
            caller.use(DEFAULT_STACK, self.cloud.endpoint_url, self.cloud.dynamodb_endpoint_url)

    def lambda_billing(self) -> dict:
        """Memory and architecture, which Lambda bills by, as the template sets them for all six functions
        (the local cloud's Lambda does not keep the architecture)."""
        template = json.loads((self.assembly / f"{DEFAULT_STACK}.template.json").read_text())
        functions = [
            resource["Properties"]
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Lambda::Function"
        ]
        settings = {(function["MemorySize"], *function.get("Architectures", ["x86_64"])) for function in functions}
        if len(settings) != 1:
            raise RuntimeError(f"the functions differ in memory or architecture: {settings}")
        memory_mb, architecture = settings.pop()
        return {"memory_mb": memory_mb, "architecture": architecture}


@contextmanager
def deployed(assembly: Path, lanes: int = 1, **cloud_options: Any) -> Iterator[Session]:
    """A fresh local cloud with the stack deployed and ``lanes`` flights and hotels stocked: one for each booking
    in flight, as bookings spread over many trips do. Bookings of one item conflict (DynamoDB refuses a
    transaction on an item another one holds, and the ledger retries it after a random wait), which measures
    that item's contention (``bench.contention``), not how the local cloud runs bookings side by side."""
    finishes = Finishes()
    with LocalCloud(
        wait_scale=WAIT_SCALE, timeout_scale=TIMEOUT_SCALE, on_execution_end=finishes, **cloud_options
    ) as cloud:
        cloud.deploy(assembly, DEFAULT_STACK)
        deployment = find_deployment(
            DEFAULT_STACK, endpoint_url=cloud.endpoint_url, dynamodb_endpoint_url=cloud.dynamodb_endpoint_url
        )
        flights, hotels = Ledger(deployment.table("flight"), "flight"), Ledger(deployment.table("hotel"), "hotel")
        for number in range(lanes):
            flight, hotel = lane(number)
            flights.stock(flight, STOCK)
            hotels.stock(hotel, STOCK)
        yield Session(cloud, deployment, finishes, deployment.client("stepfunctions"), assembly, lanes)
        cloud.wait_until_idle()  # the reconciler's deliveries of the last ends: none cut off by the teardown
