"""Flight service: reserve and cancel seats on a flight."""

from booking_saga.ledger import Hold
from booking_saga.service import SagaService

service = SagaService("flight", hold=lambda booking: Hold(booking.flight_id, booking.seats))
reserve = service.reserve
cancel = service.cancel
