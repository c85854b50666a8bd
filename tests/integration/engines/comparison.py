"""One scenario, both engines: each books it with its own booking id and its own flight and hotel, stocked alike, and
what each left is compared: how the execution ended, the states it entered, the tables and the dead-letter queue.

A disagreement fails the test unless KNOWN_DIFFERENCES.md lists it, with the AWS documentation that says which
engine is right; the file is read here, so an entry is made in one place.
"""

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from booking_saga.contract import fingerprint
from booking_saga.executions import Outcome, readable_cause
from booking_saga.ledger import Ledger
from saga.bookings import outcome_of, start_booking, wait_for
from saga.localcloud.second_engine import SecondEngine
from tests.integration.executions import raw_execution
from tests.integration.fault_schedules import SERVICES, Scenario, document, drain_dead_letters

ENGINES = ("moto", "second engine")
KNOWN_DIFFERENCES = Path(__file__).with_name("KNOWN_DIFFERENCES.md")
AWS_DOCUMENTATION = ("https://docs.aws.amazon.com/", "https://states-language.net/")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_ENTRY_FIELDS = re.compile(r"^- (compared|moto|second engine|right|AWS documentation): (.+)$", re.MULTILINE)


@dataclass
class Side:
    """One engine's booking of a scenario, and the ids its view replaces with placeholders to compare it."""

    engine: str
    booking_id: str
    flight_id: str
    hotel_id: str
    document: dict = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)  # more ids to hide: an earlier execution's


def sides(label: str) -> tuple[Side, Side]:
    """The two sides of scenario ``label``: booking ``<engine>-<label>``, with a flight and a hotel named after it."""

    def side(engine: str, prefix: str) -> Side:
        booking_id = f"{prefix}-{label}"
        return Side(engine, booking_id, f"{booking_id}-F".upper(), f"{booking_id}-H".upper())

    return side("moto", "moto"), side("second engine", "alsf")


def stock_and_describe(deployment, side: Side, scenario: Scenario) -> None:
    """Stock the side's own flight and hotel at the scenario's capacities, and write its booking document."""
    Ledger(deployment.table("flight"), "flight").stock(side.flight_id, scenario.flight_capacity)
    Ledger(deployment.table("hotel"), "hotel").stock(side.hotel_id, scenario.hotel_capacity)
    side.document = document(side.booking_id, scenario, side.flight_id, side.hotel_id)


def run_both(deployment, engine: SecondEngine, moto: Side, second: Side, name: str | None = None) -> list[Outcome]:
    """Both bookings at once, each on its engine: through ``start_booking`` (or, given an execution ``name`` suffix,
    a raw StartExecution that bypasses the bookings table) and through the second engine, named alike."""
    started = engine.start(second.booking_id if name is None else f"{second.booking_id}-{name}", second.document)
    if name is None:
        start_booking(deployment, moto.document)
        on_moto = wait_for(deployment, moto.booking_id, timeout=120)
    else:
        raw_execution(deployment, f"{moto.booking_id}-{name}", moto.document, timeout=120)
        on_moto = outcome_of(deployment, f"{moto.booking_id}-{name}")
    return [on_moto, started.wait(120)]


def views(deployment, outcomes: list[Outcome], moto: Side, second: Side) -> list[dict[str, Any]]:
    """What each engine left, with ids and times as placeholders; the dead-letter queue is drained for it."""
    parked = drain_dead_letters(deployment)
    return [_view(deployment, outcome, side, parked) for outcome, side in zip(outcomes, (moto, second), strict=True)]


def _view(deployment, outcome: Outcome, side: Side, parked: list[dict]) -> dict[str, Any]:
    flights, hotels = deployment.ledger("flight"), deployment.ledger("hotel")
    view = {
        "status": outcome.status,
        "error": outcome.error,
        "cause": readable_cause(outcome.cause),
        "path": [[step.name, step.attempts, step.error] for step in outcome.path],
        "records": {service: deployment.ledger(service).record(side.booking_id) for service in SERVICES},
        "on sale": [flights.available(side.flight_id), hotels.available(side.hotel_id)],
        "dead letters": [letter for letter in parked if letter["saga"]["booking_id"] == side.booking_id],
    }
    placeholders = {
        outcome.execution_arn: "<execution>",
        **side.placeholders,
        fingerprint(side.document): "<fingerprint>",
        side.flight_id: "<flight>",
        side.hotel_id: "<hotel>",
        side.booking_id: "<booking>",
    }
    return _normalized(view, placeholders)


def _normalized(value: Any, placeholders: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _normalized(item, placeholders) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalized(item, placeholders) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str) and value.startswith("{"):
        try:  # a Lambda error's cause: its JSON is compared, not how it is spaced (KNOWN_DIFFERENCES.md)
            return _normalized(json.loads(value), placeholders)
        except ValueError:
            pass
    if isinstance(value, str):
        for concrete, placeholder in placeholders.items():
            value = value.replace(concrete, placeholder)
        return _TIMESTAMP.sub("<time>", value)
    return value


@dataclass(frozen=True)
class Disagreement:
    compared: str  # a key of the views
    moto: str  # each engine's value, as JSON
    second_engine: str

    def __str__(self) -> str:
        return f"{self.compared}:\n  moto:          {self.moto}\n  second engine: {self.second_engine}"


@dataclass(frozen=True)
class KnownDifference:
    title: str
    disagreement: Disagreement
    right: str  # which engine does what AWS does
    documentation: str


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def known_differences(text: str | None = None) -> list[KnownDifference]:
    """The entries under "## Disagreements" in KNOWN_DIFFERENCES.md: a ``### title`` each, then its fields
    (``- compared:``, ``- moto:``, ``- second engine:``, values as JSON in backticks; ``- right:``, one engine;
    ``- AWS documentation:``, a link)."""
    text = KNOWN_DIFFERENCES.read_text() if text is None else text
    section = text.split("\n## Disagreements\n", 1)[1].split("\n## ", 1)[0]
    entries = []
    for block in section.split("\n### ")[1:]:
        title = block.splitlines()[0].strip()
        fields = {name: value.strip() for name, value in _ENTRY_FIELDS.findall(block)}
        assert set(fields) == {"compared", "moto", "second engine", "right", "AWS documentation"}, (title, fields)
        assert fields["right"] in ENGINES, f"{title}: right must be one of {ENGINES}"
        link = fields["AWS documentation"].strip("<>")
        assert link.startswith(AWS_DOCUMENTATION), f"{title}: {link} is not AWS's documentation"
        values = [_json(json.loads(fields[engine].strip("`"))) for engine in ENGINES]
        entries.append(KnownDifference(title, Disagreement(fields["compared"], *values), fields["right"], link))
    return entries


def assert_engines_agree(moto: dict[str, Any], second: dict[str, Any]) -> None:
    """Every difference between the two views is a known one."""
    found = [Disagreement(key, _json(moto[key]), _json(second[key])) for key in moto if moto[key] != second[key]]
    known = {entry.disagreement for entry in known_differences()}
    unexplained = [disagreement for disagreement in found if disagreement not in known]
    assert not unexplained, "the engines disagree (see KNOWN_DIFFERENCES.md):\n" + "\n".join(map(str, unexplained))
