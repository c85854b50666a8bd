"""Booking documents for tests: the README's example, with any field overridden."""


def booking(booking_id: str = "trip-0001", **overrides) -> dict:
    document = {
        "booking_id": booking_id,
        "customer_id": "c-42",
        "flight": {"flight_id": "NH101", "seats": 2},
        "hotel": {"hotel_id": "TOKYO-GRAND", "rooms": 1},
        "payment": {"amount": 84000, "currency": "JPY"},
    }
    return document | overrides
