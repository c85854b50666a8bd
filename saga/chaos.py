"""The chaos test: force one reserve step to fail and check that the saga undid everything.

The expected compensations are read from the deployed definition (the failing
step's catch and the chain after it), not from a hand-kept list, and the tables
are checked afterwards: the booking holds nothing anywhere and every seat and
room it took is back on sale.
"""

from dataclasses import dataclass

from saga.bookings import Outcome, start_booking, wait_for
from saga.definition import compensation_chain
from saga.deployment import Deployment


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict:
        return {"check": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class ChaosReport:
    outcome: Outcome
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "checks": [check.to_json() for check in self.checks],
            "outcome": self.outcome.to_json(),
        }


def run_chaos(deployment: Deployment, booking: dict, fail_at: str, timeout: float = 300) -> ChaosReport:
    """Book ``booking`` forced to fail at ``fail_at``, wait for it, and check the saga undid it."""
    document = {**booking, "chaos": {"fail_at": fail_at}}
    before = _available(deployment, document)
    start_booking(deployment, document)
    outcome = wait_for(deployment, document["booking_id"], timeout=timeout)
    return ChaosReport(outcome, _checks(deployment, outcome, deployment.definition(), fail_at, before))


def _checks(deployment, outcome: Outcome, definition: dict, fail_at: str, before: dict) -> list[Check]:
    failed = outcome.failed_step
    marker = f"chaos.fail_at={fail_at}"
    checks = [
        Check(
            "the saga was compensated",
            outcome.verdict == "compensated",
            f"ended {outcome.verdict} ({outcome.status}, {outcome.error})",
        ),
        Check(
            f"the {fail_at} step failed by chaos",
            failed is not None and failed.error == "ChaosFailure" and marker in (failed.message or ""),
            f"{failed.name} failed with {failed.error}: {failed.message}" if failed else "no step failed",
        ),
    ]
    if failed is not None:
        expected = compensation_chain(definition, failed.name)
        ran = [step.name for step in outcome.path[outcome.path.index(failed) + 1 :]]
        checks.append(
            Check(
                "the compensations ran in reverse order",
                ran == expected,
                f"ran {' → '.join(ran) or 'nothing'}; the definition says {' → '.join(expected)}",
            )
        )
    held = _held(deployment, outcome.booking_id)
    checks.append(
        Check(
            "nothing stays reserved or charged",
            not held,
            f"still held by {', '.join(held)}" if held else "every service's record is absent or cancelled",
        )
    )
    after = _available(deployment, outcome.booking)
    checks.append(
        Check(
            "seats and rooms are back on sale",
            after == before,
            ", ".join(f"{key}: {before[key]} before, {after[key]} after" for key in sorted(before)),
        )
    )
    return checks


def _held(deployment: Deployment, booking_id: str) -> list[str]:
    held = []
    for service in deployment.tables:
        item = deployment.ledger(service).record(booking_id)
        if item is not None and item.get("status") != "CANCELLED":
            held.append(f"{service} ({item.get('status')})")
    return held


def _available(deployment: Deployment, booking: dict) -> dict[str, int | None]:
    """What is left of each resource the booking takes from: seats on its flight, rooms in its hotel."""
    resources = {
        service.name: booking[service.name][service.capacity.resource]
        for service in deployment.contract.services
        if service.capacity
    }
    return {
        f"{service} {resource_id}": deployment.ledger(service).available(resource_id)
        for service, resource_id in resources.items()
    }
