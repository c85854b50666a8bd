"""The saga's services, in the order it runs them: one entry each, and the rest follows.

The stack builds each service's table, reserve and cancel functions, states and
outputs from its entry; the booking contract reads the service's section of a
booking (and the HTTP API's JSON schema) from its ``fields``; the ledger, the
catalog, ``saga audit`` and the chaos test know what a reservation holds from
``capacity`` and ``keeps``. A fourth service (car rental, say) is one more entry
in ``SERVICES`` and a three-line handler module beside ``flight.py``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Capacity:
    """What a reservation takes from a stock of something: seats on a flight, rooms in a hotel."""

    resource: str  # the section's field naming the resource (its inventory item)
    quantity: str  # the section's field saying how many
    catalog: str  # the catalog's section that stocks the resource


@dataclass(frozen=True, eq=False)  # one object per service, compared and hashed as itself
class Service:
    """One step of the saga and the service behind it.

    ``fields`` are its section of the booking, each with its kind (``contract.KINDS``: ``id``,
    ``units``, ``amount``, ``currency``); ``example`` is that section of the reference trip.
    """

    name: str
    reserve_state: str
    cancel_state: str
    fields: Mapping[str, str]
    example: Mapping[str, object]
    capacity: Capacity | None = None
    keeps: tuple[str, ...] = ()  # fields its reservation record keeps besides what it holds

    @property
    def table_id(self) -> str:
        """The table's construct id and output prefix: ``Flights`` -> output ``FlightsTable``."""
        return f"{self.name.capitalize()}s"

    @property
    def table_output(self) -> str:
        return f"{self.table_id}Table"

    def holding(self, section: Mapping[str, object]) -> dict[str, Any]:
        """What a reservation for this section of a booking holds, as its record keeps it."""
        holding = {name: section[name] for name in self.keeps}
        if self.capacity:
            holding |= {"resource_id": section[self.capacity.resource], "quantity": section[self.capacity.quantity]}
        return holding

    @property
    def functions(self) -> tuple[str, str]:
        """Its handlers, as the contract's chaos section names them: ``flight.reserve``, ``flight.cancel``."""
        return f"{self.name}.reserve", f"{self.name}.cancel"


SERVICES: tuple[Service, ...] = (
    Service(
        "flight",
        reserve_state="ReserveFlight",
        cancel_state="CancelFlight",
        fields={"flight_id": "id", "seats": "units"},
        example={"flight_id": "NH101", "seats": 2},
        capacity=Capacity(resource="flight_id", quantity="seats", catalog="flights"),
    ),
    Service(
        "hotel",
        reserve_state="ReserveHotel",
        cancel_state="CancelHotel",
        fields={"hotel_id": "id", "rooms": "units"},
        example={"hotel_id": "TOKYO-GRAND", "rooms": 1},
        capacity=Capacity(resource="hotel_id", quantity="rooms", catalog="hotels"),
    ),
    Service(
        "payment",
        reserve_state="ProcessPayment",
        cancel_state="RefundPayment",
        fields={"amount": "amount", "currency": "currency"},
        example={"amount": 84000, "currency": "JPY"},
        keeps=("amount", "currency"),
    ),
)
REFERENCE_CUSTOMER = "c-42"


def reference_trip(booking_id: str, services: tuple[Service, ...] = SERVICES) -> dict[str, Any]:
    """The README's booking: what `saga book`, the demo, the tests and the benchmark start from."""
    return {
        "booking_id": booking_id,
        "customer_id": REFERENCE_CUSTOMER,
        **{service.name: dict(service.example) for service in services},
    }


def service_named(name: str, services: tuple[Service, ...] = SERVICES) -> Service:
    return next(service for service in services if service.name == name)
