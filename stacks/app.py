"""The CDK app: what `cdk synth`/`cdk deploy` build (through the top-level app.py) and what tests synthesize."""

from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from booking_saga.designs import ATOMIC, CHOREOGRAPHY, stack_name
from booking_saga.services import SERVICES, Service
from stacks.booking_atomic_stack import BookingAtomicStack
from stacks.booking_choreography_stack import BookingChoreographyStack
from stacks.booking_saga_stack import BookingSagaStack
from stacks.guard import control_tower_guard
from stacks.settings import SagaSettings


def build_app(
    context: dict[str, Any] | None = None, outdir: str | None = None, services: tuple[Service, ...] = SERVICES
) -> cdk.App:
    """The app with the trip three ways (``booking_saga.designs``), one stack each, of these services. cdk-nag's
    AwsSolutions and Serverless checks and Control Tower's Guard rules make synth fail on any finding not
    acknowledged, with a reason, beside its construct."""
    # Control Tower's proactive Guard rules that can apply, run by cfn-guard at synth (the plugin ships the binary).
    app = cdk.App(context=context, outdir=outdir, policy_validation_beta1=[control_tower_guard()])
    settings = SagaSettings.from_context(app.node)
    BookingSagaStack(
        app,
        settings.stack_name,
        settings=settings,
        services=services,
        description="Trip-booking saga: flight, hotel and payment with reverse-order compensation",
    )
    BookingChoreographyStack(
        app,
        stack_name(CHOREOGRAPHY, settings.stage),
        settings=settings,
        services=services,
        description="Trip-booking saga, choreographed: the services react to each other's events on a bus",
    )
    BookingAtomicStack(
        app,
        stack_name(ATOMIC, settings.stage),
        settings=settings,
        services=services,
        description="Trip booking in one DynamoDB transaction: the comparison point of the sagas",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app
