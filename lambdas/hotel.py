"""Hotel service: reserve and cancel rooms in a hotel."""

from booking_saga.ledger import Hold
from booking_saga.service import SagaService

service = SagaService("hotel", hold=lambda booking: Hold(booking.hotel_id, booking.rooms))
reserve = service.reserve
cancel = service.cancel
