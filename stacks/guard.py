"""Control Tower's proactive Guard rules, run by cfn-guard at synth: every rule that can apply to the app.

cfn-guard evaluates each of the set's 237 rules against each template, which takes about 5 s a synth on
2 cores; about 35 of them check a resource type the app deploys. The others are disabled by name: a rule that
checks only types absent from every template can find nothing in them (a test holds ``DEPLOYED_TYPES`` to the
synthesized templates, so a new resource type brings its rules back). cfn-guard then takes about 1 s.
"""

import re
import tarfile
from functools import cache
from pathlib import Path

from cdklabs.cdk_validator_cfnguard import CfnGuardValidator, _jsii

GUARD_OUTPUT_BYTES = 64 * 1024 * 1024  # the report on a template of this size outgrows the default 1 MB
RULES = "package/rules/control-tower/cfn-guard/"  # where the plugin's bundle keeps the set, one file per rule
RESOURCE_TYPE = re.compile(r"AWS::\w+::\w+")
# Every CloudFormation resource type the app's stacks synthesize to, in any stage.
DEPLOYED_TYPES = frozenset(
    {
        "AWS::ApiGateway::Account",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::GatewayResponse",
        "AWS::ApiGateway::Method",
        "AWS::ApiGateway::Model",
        "AWS::ApiGateway::RequestValidator",
        "AWS::ApiGateway::Resource",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Stage",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::DynamoDB::Table",
        "AWS::Events::EventBus",
        "AWS::Events::Rule",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::KMS::Key",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::Lambda::Function",
        "AWS::Lambda::Permission",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Subscription",
        "AWS::SNS::Topic",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
        "AWS::StepFunctions::StateMachine",
    }
)


def control_tower_guard() -> CfnGuardValidator:
    """The plugin with the Control Tower rules that check none of ``DEPLOYED_TYPES`` disabled."""
    return CfnGuardValidator(max_buffer=GUARD_OUTPUT_BYTES, disabled_rules=sorted(rules_not_applying()))


def rules_not_applying() -> set[str]:
    """The names of the set's rules whose text names resource types, none of them in ``DEPLOYED_TYPES``."""
    return {name for name, checked in control_tower_rules().items() if checked and not checked & DEPLOYED_TYPES}


@cache
def control_tower_rules() -> dict[str, frozenset[str]]:
    """Each rule of the set the plugin ships (its file's name), with the resource types its text names."""
    (bundle,) = Path(_jsii.__file__).parent.glob("*.jsii.tgz")
    rules = {}
    with tarfile.open(bundle) as archive:
        for member in archive:
            if member.name.startswith(RULES) and member.name.endswith(".guard"):
                text = archive.extractfile(member).read().decode()  # type: ignore[union-attr]  # a file
                rules[Path(member.name).stem] = frozenset(RESOURCE_TYPE.findall(text))
    return rules
