"""Powertools for AWS Lambda, set up once for every handler: JSON logs, X-Ray traces, CloudWatch metrics.

On AWS the stack's Powertools layer provides the library; locally and in tests requirements-dev.txt
does, pinned to the same version. The function's environment, set by the stack, names the service
(``POWERTOOLS_SERVICE_NAME``: the ``service`` key of every log line and the metrics' ``service``
dimension) and the metrics namespace (``POWERTOOLS_METRICS_NAMESPACE``: the stack's name).
"""

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any, overload

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics

# An invocation with nothing to count (a refused reserve, say) is normal here: silence Powertools'
# warning about it with the filter its documentation gives.
warnings.filterwarnings("ignore", "No application metrics to publish*")

logger = Logger()
metrics = Metrics()


def tracing() -> bool:
    """Whether X-Ray takes traces here: on Lambda, where a daemon runs beside the function (active tracing), unless
    Powertools is told not to. Only then is the X-Ray SDK imported: it is about a third of a cold start's import."""
    return "AWS_XRAY_DAEMON_ADDRESS" in os.environ and os.environ.get("POWERTOOLS_TRACE_DISABLED", "") != "true"


# Where a saga step's event carries the booking id: {"step": <state name>, "booking": <execution input>}.
BOOKING_ID_PATH = "booking.booking_id"


class _OutsideLambda:
    """The context of a call from outside the Lambda runtime (a script, the benchmark's cold-start probe).

    Lambda always passes a context and Powertools reads it; with none, no deadline is known, so none is left.
    """

    function_name = "local"
    function_version = "$LATEST"
    invoked_function_arn = ""
    memory_limit_in_mb = 0
    aws_request_id = ""

    def get_remaining_time_in_millis(self) -> int:
        return 0


Handler = Callable[[Any, Any], Any]


@overload
def observed(handler: Handler, *, correlation_id_path: str | None = BOOKING_ID_PATH) -> Handler: ...


@overload
def observed(
    handler: None = None, *, correlation_id_path: str | None = BOOKING_ID_PATH
) -> Callable[[Handler], Handler]: ...


def observed(
    handler: Handler | None = None, *, correlation_id_path: str | None = BOOKING_ID_PATH
) -> Handler | Callable[[Handler], Handler]:
    """Wrap a Lambda handler: log lines with the request's context and its correlation id, a traced
    invocation (where X-Ray runs: ``tracing``), and its metrics flushed when it ends, however it ends (one EMF
    record, if it counted any).

    ``@observed`` reads the booking id of a saga step's event; ``@observed(correlation_id_path=...)``
    names another JMESPath, or None for a handler that calls ``logger.set_correlation_id`` itself.
    A path that finds nothing (an event that is not an object) only leaves the correlation id out:
    it never turns an invocation into a crash.
    """
    if handler is None:
        return functools.partial(observed, correlation_id_path=correlation_id_path)
    traced = metrics.log_metrics(handler)
    if tracing():
        from aws_lambda_powertools.tracing import Tracer

        traced = Tracer().capture_lambda_handler(traced)
    # clear_state: keys one invocation appends (its step, say) never carry over to the next one's lines.
    wrapped = logger.inject_lambda_context(correlation_id_path=correlation_id_path, clear_state=True)(traced)

    @functools.wraps(handler)
    def lambda_handler(event: Any, context: Any = None) -> Any:
        return wrapped(event, _OutsideLambda() if context is None else context)

    return lambda_handler
