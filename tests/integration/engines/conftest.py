"""Both Step Functions engines on one local cloud: moto's, through the Step Functions API as everywhere else, and the
second engine (``saga.localcloud.second_engine``), which runs the deployed definition against the same functions,
tables and queue."""

import pytest

from saga.localcloud.second_engine import SecondEngine, SecondEngineUnavailable
from tests.integration.conftest import WAIT_SCALE


@pytest.fixture(scope="module")
def second_engine(deployment, request):
    """The second engine, with the module's local cloud's Retry wait and timeout scales; skipped where it cannot
    run (no Node 22: ./dev says so once)."""
    try:
        engine = SecondEngine(deployment, WAIT_SCALE, getattr(request.module, "TIMEOUT_SCALE", 1.0))
    except SecondEngineUnavailable as error:
        pytest.skip(str(error))
    with engine:
        yield engine
