"""The booking contract: the saga's execution input and the errors a step may end in.

Every handler validates the whole document at the edge, so a malformed booking
fails with ``InvalidBooking`` before any service has written anything. The
exception class names are the error names the state machine sees (Lambda
reports them as ``errorType``), so they are part of the contract too.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

SERVICES = ("flight", "hotel", "payment")
MAX_UNITS = 9  # seats or rooms in one booking, as airlines and hotels cap them
MAX_AMOUNT = Decimal(1_000_000_000)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_SECTIONS = {
    "flight": {"flight_id", "seats"},
    "hotel": {"hotel_id", "rooms"},
    "payment": {"amount", "currency"},
}
_TOP_LEVEL = {"booking_id", "customer_id", *_SECTIONS}
# Chaos (honoured only where the stack enables it) injects the faults the saga must survive:
#   fail_at / fail_cancel: a service whose reserve / cancel fails for good (a business error);
#   transient: {"<service>.<reserve|cancel>": N}: that function fails N times, then works;
#   duplicate: ["<service>.<reserve|cancel>", ...]: those functions do their work twice (a redelivery);
#   timeout_after_write: a service whose reserve writes, then hangs until Lambda times it out.
_CHAOS = {"fail_at", "fail_cancel", "transient", "duplicate", "timeout_after_write"}
FUNCTIONS = tuple(f"{service}.{action}" for service in SERVICES for action in ("reserve", "cancel"))
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


class ChaosFailure(BusinessError):
    """A failure forced by the booking's ``chaos`` section (chaos-enabled stacks only)."""


class TransientFailure(Exception):
    """A failure worth retrying (a write conflict); the state machine retries it."""


@dataclass(frozen=True)
class Chaos:
    fail_at: str | None = None
    fail_cancel: str | None = None
    transient: tuple[tuple[str, int], ...] = ()
    duplicate: frozenset[str] = frozenset()
    timeout_after_write: str | None = None

    def transient_failures(self, function: str) -> int:
        return dict(self.transient).get(function, 0)


@dataclass(frozen=True)
class Booking:
    booking_id: str
    customer_id: str
    flight_id: str
    seats: int
    hotel_id: str
    rooms: int
    amount: Decimal
    currency: str
    chaos: Chaos


def parse_booking(document: object) -> Booking:
    """Return the validated booking, or raise ``InvalidBooking`` naming the first problem."""
    doc = _object(document, "booking", required=_TOP_LEVEL, optional={"chaos"})
    flight = _object(doc["flight"], "flight", required=_SECTIONS["flight"])
    hotel = _object(doc["hotel"], "hotel", required=_SECTIONS["hotel"])
    payment = _object(doc["payment"], "payment", required=_SECTIONS["payment"])
    return Booking(
        booking_id=parse_booking_id(doc.get("booking_id")),
        customer_id=_identifier(doc["customer_id"], "customer_id"),
        flight_id=_identifier(flight["flight_id"], "flight.flight_id"),
        seats=_units(flight["seats"], "flight.seats"),
        hotel_id=_identifier(hotel["hotel_id"], "hotel.hotel_id"),
        rooms=_units(hotel["rooms"], "hotel.rooms"),
        amount=_amount(payment["amount"]),
        currency=_matching(payment["currency"], _CURRENCY, "payment.currency", "a 3-letter ISO code"),
        chaos=_chaos(doc.get("chaos")),
    )


def parse_booking_id(value: object) -> str:
    """The idempotency key; cancels need nothing else from the document."""
    return _identifier(value, "booking_id")


def _object(value: object, name: str, required: set[str], optional: frozenset | set = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise InvalidBooking(f"{name} must be an object")
    missing = sorted(required - value.keys())
    if missing:
        raise InvalidBooking(f"{name} is missing {', '.join(missing)}")
    unknown = sorted(readable_name(key) for key in value.keys() - required - optional)
    if unknown:
        raise InvalidBooking(f"{name} has unknown field(s) {', '.join(unknown)}")
    return value


def readable_name(key: object) -> str:
    """An unknown field's name as a refusal quotes it: at most 64 characters, control characters escaped,
    since the message reaches logs, the HTTP API's answers and the execution history."""
    text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in str(key)[:64])
    return text[:64]


def _identifier(value: object, name: str) -> str:
    return _matching(value, _ID, name, "1-64 characters of A-Z a-z 0-9 _ -")


def _matching(value: object, pattern: re.Pattern, name: str, expected: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidBooking(f"{name} must be {expected}")
    return value


def _units(value: object, name: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_UNITS:
        raise InvalidBooking(f"{name} must be a whole number from 1 to {MAX_UNITS}")
    return value


def _amount(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBooking("payment.amount must be a number")
    if isinstance(value, int) and not 0 < value <= MAX_AMOUNT:  # before str(): huge ints cannot be printed
        raise InvalidBooking(f"payment.amount must be positive, at most {MAX_AMOUNT}, with at most 2 decimals")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidBooking("payment.amount must be a number") from None
    if not amount.is_finite() or not 0 < amount <= MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise InvalidBooking(f"payment.amount must be positive, at most {MAX_AMOUNT}, with at most 2 decimals")
    return amount


def _chaos(value: object) -> Chaos:
    if value is None:
        return Chaos()
    chaos = _object(value, "chaos", required=set(), optional=_CHAOS)
    for key in ("fail_at", "fail_cancel", "timeout_after_write"):
        if key in chaos and chaos[key] not in SERVICES:
            raise InvalidBooking(f"chaos.{key} must be one of {', '.join(SERVICES)}")
    transient = chaos.get("transient", {})
    if not isinstance(transient, dict) or not all(
        function in FUNCTIONS and type(count) is int and 1 <= count <= MAX_TRANSIENT
        for function, count in transient.items()
    ):
        raise InvalidBooking(f"chaos.transient must map <service>.<reserve|cancel> to 1..{MAX_TRANSIENT} failures")
    duplicate = chaos.get("duplicate", [])
    if not isinstance(duplicate, list) or not all(function in FUNCTIONS for function in duplicate):
        raise InvalidBooking("chaos.duplicate must list functions named <service>.<reserve|cancel>")
    return Chaos(
        fail_at=chaos.get("fail_at"),
        fail_cancel=chaos.get("fail_cancel"),
        transient=tuple(sorted(transient.items())),
        duplicate=frozenset(duplicate),
        timeout_after_write=chaos.get("timeout_after_write"),
    )
