"""Flight service: reserve and cancel seats on a flight."""

from booking_saga.service import SagaService
from booking_saga.services import service_named

service = SagaService(service_named("flight"))
reserve = service.reserve
cancel = service.cancel
