"""Payment service: charge the booking (declined above its currency's payment limit) and refund it."""

from booking_saga.contract import Booking, Contract, PaymentDeclined
from booking_saga.service import SagaService
from booking_saga.services import service_named


def _authorize(booking: Booking, contract: Contract) -> None:
    payment = booking.section("payment")
    limit = contract.currencies[payment["currency"]].payment_limit
    if payment["amount"] > limit:
        raise PaymentDeclined(f"{payment['amount']} {payment['currency']} is above the card limit of {limit}")


service = SagaService(service_named("payment"), admit=_authorize)
reserve = service.reserve
cancel = service.cancel
