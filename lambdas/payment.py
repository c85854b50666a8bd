"""Payment service: charge the booking (declined above ``PAYMENT_LIMIT``) and refund it."""

import os
from decimal import Decimal

from booking_saga.contract import Booking, PaymentDeclined
from booking_saga.service import SagaService


def _authorize(booking: Booking) -> None:
    limit = Decimal(os.environ["PAYMENT_LIMIT"])
    if booking.amount > limit:
        raise PaymentDeclined(f"{booking.amount} {booking.currency} is above the card limit of {limit}")


service = SagaService(
    "payment",
    details=lambda booking: {"amount": booking.amount, "currency": booking.currency},
    admit=_authorize,
)
reserve = service.reserve
cancel = service.cancel
