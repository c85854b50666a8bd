"""Hotel service: reserve and cancel rooms in a hotel."""

from booking_saga.service import SagaService
from booking_saga.services import service_named

service = SagaService(service_named("hotel"))
reserve = service.reserve
cancel = service.cancel
