"""`saga book --engine`: which Step Functions interpreter runs the booking.

``stepfunctions`` (the default) is Step Functions itself: AWS's, or the local cloud's (moto's). ``alsf`` is the
local cloud's second engine (``saga.localcloud.second_engine``, aws-local-stepfunctions), for a person who wants
to see how another interpreter runs the same deployed definition, functions and tables. It reads the booking
from the same flags as ``saga.commands.book`` and shows the same path.
"""

from argparse import Namespace

from saga import commands, render
from saga.commands import ExitStatus, Failure
from saga.render import Output

ENGINES = ("stepfunctions", "alsf")


def book(args: Namespace, out: Output) -> ExitStatus:
    if args.engine == "stepfunctions":
        return commands.book(args, out)
    return _book_on_the_second_engine(args, out)


def _book_on_the_second_engine(args: Namespace, out: Output) -> ExitStatus:
    """Refused, in one line, where it cannot run: off a local cloud, through the HTTP API, without Node 22."""
    from saga.localcloud.second_engine import SecondEngine, SecondEngineUnavailable, usable_node

    if not args.endpoint_url:
        raise Failure("--engine alsf runs on a local cloud only: pass --endpoint-url (saga local up serves one)")
    if args.api:
        raise Failure("--engine alsf starts the saga itself, so it cannot go through the HTTP API: drop --api")
    if not args.wait:
        raise Failure("--engine alsf runs the booking inside this command, which waits for it: add --wait")
    try:
        node = usable_node()  # before the stack is looked for: a missing Node is the likelier trouble
        booking_id = commands._booking_id(args, "trip")
        deployment = commands._deployment(args)
        document = commands._booking_from(args, booking_id, deployment)
        with out.progress(f"Booking {booking_id} on the second engine"), SecondEngine(deployment) as engine:
            try:
                outcome = engine.start(booking_id, document).wait(args.timeout)
            except TimeoutError:
                raise Failure(f"booking {booking_id} did not end within {args.timeout:g} s; it was stopped") from None
    except SecondEngineUnavailable as error:
        raise Failure(str(error)) from None
    out.result(outcome.to_json(), render.path(out, outcome))
    engine_used = f"aws-local-stepfunctions on Node.js {node.version}"
    out.note(f"  ({engine_used}: not a Step Functions execution, so saga status and list do not know it)")
    return ExitStatus.OK if outcome.verdict == "confirmed" else ExitStatus.FAILED
