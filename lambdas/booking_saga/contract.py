"""The booking contract: the saga's execution input, what one stack accepts, and the errors a step may end in.

Every handler checks the whole document at the edge, so a malformed booking
fails with ``InvalidBooking`` before any service has written anything. The
exception class names are the error names the state machine sees (Lambda
reports them as ``errorType``), so they are part of the contract too.

What a stack accepts beyond the document's shape is its ``Contract``: its
currencies (ISO 4217 code, minor-unit digits, payment limit) and whether chaos
is on. The stack writes it into every function's environment and into an
output, both named ``BookingContract``, so the Lambdas, the HTTP API's JSON
schema and the ``saga`` command read one description of it.
"""

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from booking_saga.services import SERVICES, Service

ENVIRONMENT_VARIABLE = "BOOKING_CONTRACT"
MAX_BOOKING_BYTES = 8 * 1024  # as compact JSON; a booking is a few hundred bytes
MAX_UNITS = 9  # seats or rooms in one booking, as airlines and hotels cap them
MAX_AMOUNT = Decimal(1_000_000_000)  # beyond any card limit: a larger number is a mistake, not a payment
ID_PATTERN = "[A-Za-z0-9_-]{1,64}"
_ID = re.compile(ID_PATTERN)
_MAX_OWNER = 512  # an execution ARN is at most about 250 characters
# ISO 4217 minor units (digits after the decimal point) of the currencies a stack may accept.
MINOR_UNITS = {
    "AUD": 2,
    "BHD": 3,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "INR": 2,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "NZD": 2,
    "OMR": 3,
    "SGD": 2,
    "USD": 2,
}
# What a stack accepts unless `-c payment_limits=...` says otherwise: about the same sum in each.
DEFAULT_PAYMENT_LIMITS = {"JPY": 500_000, "USD": 3_500, "EUR": 3_200, "GBP": 2_700, "KWD": 1_000}
# Chaos (honoured only where the stack enables it; refused elsewhere) injects the faults the saga must survive:
#   fail_at / fail_cancel: a service whose reserve / cancel fails for good (a business error);
#   transient: {"<service>.<reserve|cancel>": N}: that function fails N times, then works;
#   duplicate: ["<service>.<reserve|cancel>", ...]: those functions do their work twice (a redelivery);
#   timeout_after_write: a service whose reserve writes, then hangs until Lambda times it out;
#   oversized_result: a service whose reserve writes, then answers with more than a state may hold (256 KiB), so
#       the execution fails with States.DataLimitExceeded, which no catch sees.
CHAOS_KINDS = ("fail_at", "fail_cancel", "transient", "duplicate", "timeout_after_write", "oversized_result")
MAX_TRANSIENT = 8  # a compensation's retries; a reserve retries 3 times, so more fails it


class BusinessError(Exception):
    """A failure that retrying cannot fix: the saga compensates at once."""


class InvalidBooking(BusinessError):
    """The booking document does not match the contract."""


class SoldOut(BusinessError):
    """Unknown flight or hotel, or not enough seats or rooms left."""


class PaymentDeclined(BusinessError):
    """The charge was refused."""


class BookingCancelled(BusinessError):
    """The booking was already cancelled: a late reserve must not resurrect it."""


class BookingConflict(BusinessError):
    """The booking id is held by another execution, or was used for other details: nothing was taken."""


class ChaosFailure(BusinessError):
    """A failure forced by the booking's ``chaos`` section (chaos-enabled stacks only)."""


class TransientFailure(Exception):
    """A failure worth retrying (a write conflict); the state machine retries it."""


@dataclass(frozen=True)
class Currency:
    code: str
    minor_units: int  # digits after the decimal point an amount may have
    payment_limit: Decimal  # a larger charge is declined


@dataclass(frozen=True)
class Chaos:
    fail_at: str | None = None
    fail_cancel: str | None = None
    transient: tuple[tuple[str, int], ...] = ()
    duplicate: frozenset[str] = frozenset()
    timeout_after_write: str | None = None
    oversized_result: str | None = None

    def transient_failures(self, function: str) -> int:
        return dict(self.transient).get(function, 0)


@dataclass(frozen=True)
class Booking:
    """A valid booking: its ids, each service's section (``booking.section("flight")["seats"]``), its chaos."""

    booking_id: str
    customer_id: str
    sections: Mapping[str, Mapping[str, Any]]
    chaos: Chaos
    fingerprint: str  # the same for the same booking details, whatever its chaos (see ``fingerprint``)

    def section(self, service: str) -> Mapping[str, Any]:
        return self.sections[service]


@dataclass(frozen=True)
class Contract:
    """What one stack accepts: its currencies with their payment limits, whether chaos is on, its services."""

    currencies: Mapping[str, Currency]
    chaos_enabled: bool = False
    services: tuple[Service, ...] = field(default=SERVICES)

    @classmethod
    def with_limits(
        cls, payment_limits: Mapping[str, object], chaos_enabled: bool, services: tuple[Service, ...] = SERVICES
    ) -> "Contract":
        """A contract accepting exactly these currencies (ISO 4217 codes), each up to its payment limit.
        Raises ``ValueError`` naming what is wrong."""
        if not isinstance(payment_limits, Mapping) or not payment_limits:
            raise ValueError("payment limits must map at least one currency code to its limit")
        currencies = {}
        for code, limit in payment_limits.items():
            if code not in MINOR_UNITS:
                raise ValueError(f"unknown currency {code!r}: the contract knows {', '.join(MINOR_UNITS)}")
            amount = _number(limit) if not isinstance(limit, str) else _number(_from_text(limit))
            if amount is None or not 0 < amount <= MAX_AMOUNT or _decimals(amount) > MINOR_UNITS[code]:
                raise ValueError(
                    f"the payment limit of {code} must be above 0, at most {MAX_AMOUNT}, "
                    f"with at most {MINOR_UNITS[code]} decimals, not {limit!r}"
                )
            currencies[code] = Currency(code, MINOR_UNITS[code], amount)
        return cls(MappingProxyType(currencies), chaos_enabled, services)

    @classmethod
    def from_json(cls, document: Mapping[str, Any], services: tuple[Service, ...] = SERVICES) -> "Contract":
        limits = {code: currency["payment_limit"] for code, currency in document["currencies"].items()}
        return cls.with_limits(limits, bool(document["chaos_enabled"]), services)

    @classmethod
    def from_environment(cls) -> "Contract":
        """The contract the stack gave this function (``BOOKING_CONTRACT``)."""
        return cls.from_json(json.loads(os.environ[ENVIRONMENT_VARIABLE]))

    def to_json(self) -> dict[str, Any]:
        return {
            "chaos_enabled": self.chaos_enabled,
            "currencies": {
                code: {"minor_units": currency.minor_units, "payment_limit": str(currency.payment_limit)}
                for code, currency in sorted(self.currencies.items())
            },
        }

    @property
    def functions(self) -> tuple[str, ...]:
        """The handlers chaos may name: ``flight.reserve``, ``flight.cancel``, ..."""
        return tuple(function for service in self.services for function in service.functions)

    def json_schema(self) -> dict[str, Any]:
        """The booking's shape as a JSON schema (draft 4, which API Gateway's models take): what a schema can say
        of this contract; ``parse`` says the rest (decimals per currency, the size, chaos's contents)."""
        kinds: dict[str, dict[str, Any]] = {
            "id": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
            "units": {"type": "integer", "minimum": 1, "maximum": MAX_UNITS},
            "amount": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": int(MAX_AMOUNT)},
            "currency": {"type": "string", "enum": sorted(self.currencies)},
        }
        properties: dict[str, dict[str, Any]] = {"booking_id": kinds["id"], "customer_id": kinds["id"]}
        for service in self.services:
            properties[service.name] = {
                "type": "object",
                "required": list(service.fields),
                "additionalProperties": False,
                "properties": {name: kinds[kind] for name, kind in service.fields.items()},
            }
        if self.chaos_enabled:
            properties["chaos"] = {"type": "object"}
        return {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": "Booking",
            "type": "object",
            "required": [name for name in properties if name != "chaos"],
            "additionalProperties": False,
            "properties": properties,
        }

    def parse(self, document: object) -> Booking:
        """The valid booking, or ``InvalidBooking`` naming the first problem."""
        _check_size(document)
        sections = {service.name for service in self.services}
        doc = _object(document, "booking", required={"booking_id", "customer_id", *sections}, optional={"chaos"})
        return Booking(
            booking_id=parse_booking_id(doc["booking_id"]),
            customer_id=parse_identifier(doc["customer_id"], "customer_id"),
            sections=MappingProxyType(
                {service.name: self._section(service, doc[service.name]) for service in self.services}
            ),
            chaos=self._chaos(doc["chaos"]) if "chaos" in doc else Chaos(),
            fingerprint=fingerprint(doc),
        )

    def chaos_of(self, document: object) -> Chaos:
        """The chaos a cancel honours: the document's, where chaos is on and it is valid; else none.
        A cancel never refuses to run over its chaos section."""
        if not self.chaos_enabled or not isinstance(document, dict) or "chaos" not in document:
            return Chaos()
        try:
            return self._chaos(document["chaos"])
        except InvalidBooking:
            return Chaos()

    def _section(self, service: Service, value: object) -> Mapping[str, Any]:
        section = _object(value, service.name, required=set(service.fields))
        parsed: dict[str, Any] = {}
        currency = None
        for name, kind in sorted(service.fields.items(), key=lambda item: item[1] == "amount"):  # amounts last
            label = f"{service.name}.{name}"
            if kind == "id":
                parsed[name] = parse_identifier(section[name], label)
            elif kind == "units":
                parsed[name] = _units(section[name], label)
            elif kind == "currency":
                currency = self._currency(section[name], label)
                parsed[name] = currency.code
            elif kind == "amount":
                parsed[name] = _amount(section[name], label, currency)
            else:
                raise ValueError(f"service {service.name}: unknown kind {kind!r} of field {name}")
        return MappingProxyType(parsed)

    def _currency(self, value: object, name: str) -> Currency:
        if not isinstance(value, str) or value not in self.currencies:
            raise InvalidBooking(f"{name} must be one of {', '.join(sorted(self.currencies))}")
        return self.currencies[value]

    def _chaos(self, value: object) -> Chaos:
        if not self.chaos_enabled:
            raise InvalidBooking("chaos is not enabled on this stack")
        chaos = _object(value, "chaos", required=set(), optional=set(CHAOS_KINDS))
        names = [service.name for service in self.services]
        for key in ("fail_at", "fail_cancel", "timeout_after_write", "oversized_result"):
            if key in chaos and chaos[key] not in names:
                raise InvalidBooking(f"chaos.{key} must be one of {', '.join(names)}")
        transient = chaos.get("transient", {})
        if not isinstance(transient, dict) or not all(
            function in self.functions and type(count) is int and 1 <= count <= MAX_TRANSIENT
            for function, count in transient.items()
        ):
            raise InvalidBooking(f"chaos.transient must map <service>.<reserve|cancel> to 1..{MAX_TRANSIENT} failures")
        duplicate = chaos.get("duplicate", [])
        if (
            not isinstance(duplicate, list)
            or not all(isinstance(function, str) and function in self.functions for function in duplicate)
            or len(set(duplicate)) != len(duplicate)
        ):
            raise InvalidBooking("chaos.duplicate must list distinct functions named <service>.<reserve|cancel>")
        return Chaos(
            fail_at=chaos.get("fail_at"),
            fail_cancel=chaos.get("fail_cancel"),
            transient=tuple(sorted(transient.items())),
            duplicate=frozenset(duplicate),
            timeout_after_write=chaos.get("timeout_after_write"),
            oversized_result=chaos.get("oversized_result"),
        )


def default_contract(chaos_enabled: bool = False, services: tuple[Service, ...] = SERVICES) -> Contract:
    """The contract of a stack deployed with default settings."""
    return Contract.with_limits(DEFAULT_PAYMENT_LIMITS, chaos_enabled, services)


def parse_booking_id(value: object) -> str:
    """The idempotency key: a booking id is used for one booking, once."""
    return parse_identifier(value, "booking_id")


def parse_identifier(value: object, name: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidBooking(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def fingerprint(document: Mapping[str, Any]) -> str:
    """A digest of the booking's details: the same document (numbers compared by value) gives the same
    digest, and ``chaos``, an instruction to a test stack rather than a detail of the trip, is left out."""
    details = {key: value for key, value in document.items() if key != "chaos"}
    canonical = json.dumps(_canonical(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_owner(value: object) -> str:
    """The execution a step runs for (``$$.Execution.Id``): it owns what the step reserves."""
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_OWNER:
        raise InvalidBooking("the invocation must name its execution (execution: $$.Execution.Id)")
    return value


def readable_name(key: object) -> str:
    """An unknown field's name as a refusal quotes it: at most 64 characters, control characters escaped,
    since the message reaches logs, the HTTP API's answers and the execution history."""
    text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in str(key)[:64])
    return text[:64]


def _check_size(document: object) -> None:
    """Refuse a document over the limit before reading it; one JSON cannot carry (NaN, a 5,000-digit number,
    nesting too deep to print) is left to the field checks, which refuse it by name."""
    try:
        size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError):
        return
    if size > MAX_BOOKING_BYTES:
        raise InvalidBooking(f"booking must be at most {MAX_BOOKING_BYTES} bytes of JSON, not {size}")


def _object(
    value: object, name: str, required: set[str], optional: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidBooking(f"{name} must be an object")
    missing = sorted(required - value.keys())
    if missing:
        raise InvalidBooking(f"{name} is missing {', '.join(missing)}")
    unknown = sorted(readable_name(key) for key in value.keys() - required - optional)
    if unknown:
        raise InvalidBooking(f"{name} has unknown field(s) {', '.join(unknown)}")
    return value


def _units(value: object, name: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_UNITS:
        raise InvalidBooking(f"{name} must be a whole number from 1 to {MAX_UNITS}")
    return value


def _amount(value: object, name: str, currency: Currency | None) -> Decimal:
    """An amount in the section's currency, with no more decimals than the currency has (2 without one)."""
    digits = currency.minor_units if currency else 2
    amount = _number(value)
    if amount is None:
        raise InvalidBooking(f"{name} must be a number")
    if not 0 < amount <= MAX_AMOUNT or _decimals(amount) > digits:
        decimals = "no decimals" if digits == 0 else f"at most {digits} decimals"
        unit = f" ({currency.code})" if currency else ""
        raise InvalidBooking(f"{name} must be above 0, at most {MAX_AMOUNT}, with {decimals}{unit}")
    return amount


def _number(value: object) -> Decimal | None:
    """A JSON number as a finite Decimal; None for anything else (a string, a bool, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        number = Decimal(value) if isinstance(value, int | Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _from_text(text: str) -> Decimal | None:
    """A number written in a setting (CDK context passes strings)."""
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def _decimals(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _canonical(value: Any) -> Any:
    """Numbers by value (84000, 84000.0 and Decimal('84000') alike), so equal details fingerprint alike."""
    if isinstance(value, bool | str) or value is None or (isinstance(value, int) and abs(value) < 10**18):
        return value
    if isinstance(value, int):  # str() refuses an int of over 4,300 digits; Decimal prints it in E notation
        return str(Decimal(value))
    if isinstance(value, float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if not number.is_finite():
            return str(number)
        return int(number) if number == number.to_integral_value() else str(number.normalize())
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return str(value)
