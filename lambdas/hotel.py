"""Hotel service: reserve and cancel rooms in a hotel."""

from reservations import Hold
from saga_service import SagaService

service = SagaService("hotel", hold=lambda booking: Hold(booking.hotel_id, booking.rooms))
reserve = service.reserve
cancel = service.cancel
