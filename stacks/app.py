"""The CDK app: what `cdk synth`/`cdk deploy` build (through the top-level app.py) and what tests synthesize."""

from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from booking_saga.services import SERVICES, Service
from stacks.booking_saga_stack import BookingSagaStack
from stacks.settings import SagaSettings


def build_app(
    context: dict[str, Any] | None = None, outdir: str | None = None, services: tuple[Service, ...] = SERVICES
) -> cdk.App:
    """The app with its one stack, of these services; cdk-nag's AwsSolutions checks make synth fail on any
    unacknowledged finding."""
    app = cdk.App(context=context, outdir=outdir)
    settings = SagaSettings.from_context(app.node)
    BookingSagaStack(
        app,
        settings.stack_name,
        settings=settings,
        services=services,
        description="Trip-booking saga: flight, hotel and payment with reverse-order compensation",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
