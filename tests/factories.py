"""Booking documents for tests: the reference trip (the README's), with any field overridden."""

from booking_saga.services import reference_trip


def booking(booking_id: str = "trip-0001", **overrides: object) -> dict:
    return reference_trip(booking_id) | overrides
