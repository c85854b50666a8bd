"""Flight service: reserve and cancel seats on a flight."""

from reservations import Hold
from saga_service import SagaService

service = SagaService("flight", hold=lambda booking: Hold(booking.flight_id, booking.seats))
reserve = service.reserve
cancel = service.cancel
