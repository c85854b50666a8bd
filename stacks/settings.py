"""Deployment settings, read once from CDK context (``cdk deploy -c stage=production``) into one typed object."""

import json
import re
from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_stepfunctions as sfn
from constructs import Node

from booking_saga.contract import DEFAULT_PAYMENT_LIMITS, ENVIRONMENT_VARIABLE, Contract
from booking_saga.services import SERVICES, Service
from stacks.function import FunctionDefaults

# Development stages: chaos may be on, and their data goes with the stack. Every other stage is protected.
DEVELOPMENT_STAGES = ("dev", "test")
DEVELOPMENT_PREFIX = "dev-"  # dev-alice, dev-ci, ...


@dataclass(frozen=True)
class SagaSettings:
    stage: str = "dev"
    chaos_enabled: bool = True
    payment_limits: tuple[tuple[str, int | str], ...] = tuple(DEFAULT_PAYMENT_LIMITS.items())
    log_level: str = "ERROR"  # what the state machine logs: ALL, ERROR, FATAL or OFF

    @property
    def stack_name(self) -> str:
        return "BookingSaga" if self.stage == "dev" else f"BookingSaga-{self.stage}"

    @property
    def is_protected(self) -> bool:
        """Only an explicitly named development stage is unprotected: ``prd``, ``live`` or a typo are protected."""
        return not is_development_stage(self.stage)

    @property
    def removal(self) -> RemovalPolicy:
        """What stack deletion does to the data: a protected stage keeps it."""
        return RemovalPolicy.RETAIN if self.is_protected else RemovalPolicy.DESTROY

    def contract(self, services: tuple[Service, ...] = SERVICES) -> Contract:
        """What the stack's functions accept, for these services."""
        return Contract.with_limits(dict(self.payment_limits), self.chaos_enabled, services)

    def contract_json(self, services: tuple[Service, ...]) -> str:
        """The contract as the functions read it from their environment (and a stack outputs it)."""
        return json.dumps(self.contract(services).to_json(), separators=(",", ":"))

    def function_defaults(self, stack: Stack, services: tuple[Service, ...]) -> FunctionDefaults:
        """What every function of a stack of this app shares: the booking contract in its environment, and this
        stage's removal policy."""
        return FunctionDefaults.for_stack(stack, {ENVIRONMENT_VARIABLE: self.contract_json(services)}, self.removal)

    @classmethod
    def from_context(cls, node: Node) -> "SagaSettings":
        stage = _stage(node.try_get_context("stage") or "dev")
        chaos = node.try_get_context("chaos")
        settings = cls(
            stage=stage,
            chaos_enabled=is_development_stage(stage) if chaos is None else _flag(chaos, "chaos"),
            payment_limits=_payment_limits(node.try_get_context("payment_limits") or DEFAULT_PAYMENT_LIMITS),
            log_level=_log_level(node.try_get_context("log_level") or cls.log_level),
        )
        if settings.is_protected and settings.chaos_enabled:
            raise ValueError(
                f"chaos cannot be enabled on the protected stage {stage!r} "
                f"(development stages: {', '.join(DEVELOPMENT_STAGES)}, {DEVELOPMENT_PREFIX}<name>)"
            )
        try:
            settings.contract()  # refuses unknown currencies and bad limits at synth
        except ValueError as error:
            raise ValueError(f"context payment_limits: {error}") from None
        return settings


def is_development_stage(stage: str) -> bool:
    named = stage.startswith(DEVELOPMENT_PREFIX) and len(stage) > len(DEVELOPMENT_PREFIX)
    return stage in DEVELOPMENT_STAGES or named


def _stage(value: object) -> str:
    stage = str(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,39}", stage):
        raise ValueError(f"context stage must be a letter, then up to 39 letters, digits or -, not {value!r}")
    return stage


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"context {name} must be true or false, not {value!r}")


def _log_level(value: object) -> str:
    if str(value).upper() in sfn.LogLevel.__members__:
        return str(value).upper()
    raise ValueError(f"context log_level must be one of {', '.join(sfn.LogLevel.__members__)}, not {value!r}")


def _payment_limits(value: object) -> tuple[tuple[str, int | str], ...]:
    """``{"JPY": 500000, "USD": 3500}``: an object in cdk.json, or its JSON text after ``-c payment_limits=``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or not value:
        raise ValueError('context payment_limits must be a JSON object such as {"JPY": 500000, "USD": 3500}')
    return tuple((str(code), limit) for code, limit in value.items())
