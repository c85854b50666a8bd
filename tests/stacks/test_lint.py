"""Linters on the synthesized app: cfn-lint on the template, statelint and asl-validator on the ASL, cdk-nag and
cfn-guard on the constructs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import aws_sqs as sqs

from saga.node import find_node
from saga.synth import ROOT, cached_assembly
from stacks.app import build_app
from stacks.guard import DEPLOYED_TYPES, control_tower_rules, rules_not_applying
from tests.stacks.definition import resolved_definition

STATELINT = Path(sys.executable).parent / "statelint"
ASL_VALIDATOR = ROOT / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"


# ---------------------------------------------------------------- cfn-lint


def _cfn_lint_errors(template: dict) -> list[str]:
    """cfn-lint's errors (rule ids E...); warnings and informational findings are not failures. Imported here, on
    the one worker that lints: cfn-lint takes half a second to import (sympy, networkx)."""
    from cfnlint.api import lint

    return [str(match) for match in lint(json.dumps(template)) if match.rule.id.startswith("E")]


def test_cfn_lint_finds_no_errors_in_the_template(assembly):
    assert _cfn_lint_errors(assembly.template) == []


def test_cfn_lint_would_catch_a_broken_template(assembly):
    """The check above can fail: the same call flags an unknown runtime and a dangling reference."""
    template = assembly.template
    function = next(res for res in template["Resources"].values() if res["Type"] == "AWS::Lambda::Function")
    function["Properties"]["Runtime"] = "python2.9"
    function["Properties"]["Role"] = {"Fn::GetAtt": ["NoSuchRole", "Arn"]}
    assert len(_cfn_lint_errors(template)) >= 2


# ---------------------------------------------------------------- statelint


def _statelint(definition: dict, tmp_path: Path) -> list[str]:
    """statelint's problems, FLOAT ignored: CDK writes integer backoff rates, which Step Functions accepts."""
    path = tmp_path / "definition.asl.json"
    path.write_text(json.dumps(definition, indent=2))
    run = subprocess.run([str(STATELINT), "--ignore=FLOAT", str(path)], capture_output=True, text=True, check=False)
    problems = [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert (run.returncode == 0) == (problems == []), problems
    return problems


def test_statelint_passes_the_resolved_definition(assembly, tmp_path):
    assert STATELINT.exists(), f"statelint is not installed next to {sys.executable}"
    assert _statelint(resolved_definition(assembly.template), tmp_path) == []


def test_statelint_would_catch_a_broken_definition(assembly, tmp_path):
    definition = resolved_definition(assembly.template)
    definition["States"]["CancelFlight"]["Next"] = "NoSuchState"
    problems = _statelint(definition, tmp_path)
    assert any("NoSuchState" in problem for problem in problems), problems


# ---------------------------------------------------------------- asl-validator


def _asl_validator(definition: dict) -> list[str]:
    """asl-validator's findings (the JSON schema of the States Language, and every JSONPath and ARN in it)."""
    node = find_node()
    assert node is not None and ASL_VALIDATOR.is_file(), "asl-validator comes with `npm ci` (./dev runs it)"
    run = subprocess.run(
        [node.path, str(ASL_VALIDATOR), "--json-definition", json.dumps(definition)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    assert (run.returncode == 0) == (findings == []), run.stdout + run.stderr
    return findings


def test_asl_validator_passes_the_resolved_definition(assembly):
    assert _asl_validator(resolved_definition(assembly.template)) == []


def test_asl_validator_would_catch_a_broken_definition(assembly):
    definition = resolved_definition(assembly.template)
    definition["States"]["ReserveFlight"]["ResultPath"] = "not a path"
    findings = _asl_validator(definition)
    assert any("/States/ReserveFlight/ResultPath is invalid" in finding for finding in findings), findings


# ---------------------------------------------------------------- cdk-nag


def _violations(report_file: Path) -> list[tuple[str, str]]:
    report = json.loads(report_file.read_text())
    return [
        (violation["ruleName"], construct["constructPath"])
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]


def test_validation_report_has_no_violations(assembly):
    report_file = assembly.directory / "validation-report.json"
    if not report_file.exists():
        pytest.skip("no validation report written: synth succeeding is the evidence")
    report = json.loads(report_file.read_text())
    assert [plugin for plugin in report.get("pluginReports", []) if plugin.get("conclusion") == "failure"] == []
    assert _violations(report_file) == []


def test_every_rule_pack_is_active_and_fails_synth_on_an_unacknowledged_finding(tmp_path):
    """Proves the checks above mean something: the app's synth raises on a plain queue, and each pack (cdk-nag's
    AwsSolutions and Serverless, Control Tower's Guard rules) names its own rule."""
    app = build_app(outdir=str(tmp_path))
    sqs.Queue(app.node.find_child("BookingSaga"), "PlainQueue")
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    found = _violations(tmp_path / "validation-report.json")
    for rule in ("AwsSolutions-SQS4", "Serverless-SQSRedrivePolicy", "sqs_dlq_check"):  # no TLS rule; no DLQ
        assert (rule, "BookingSaga/PlainQueue/Resource") in found, rule


@pytest.mark.parametrize("stage", ["dev", "production"])
def test_the_guard_rules_left_out_check_only_resource_types_the_app_does_not_deploy(assembly, stage):
    """Guard runs the Control Tower rules that can apply (stacks/guard.py). ``DEPLOYED_TYPES`` is exactly what the
    stage's templates hold, so a new resource type fails here until its rules run too."""
    directory = assembly.directory if stage == "dev" else cached_assembly(context={"stage": stage})
    templates = [json.loads(path.read_text()) for path in directory.glob("*.template.json")]
    assert len(templates) == 3
    assert {resource["Type"] for template in templates for resource in template["Resources"].values()} == (
        DEPLOYED_TYPES
    )
    rules, left_out = control_tower_rules(), rules_not_applying()
    assert len(rules) > 200 and left_out < rules.keys()
    assert all(rules[name] and rules[name].isdisjoint(DEPLOYED_TYPES) for name in left_out)
    assert {"ct-sqs-pr-1", "ct-dynamodb-pr-1", "ct-lambda-pr-2", "ct-stepfunctions-pr-1"}.isdisjoint(left_out)


def _acknowledgments(assembly) -> list[tuple[str, str, object]]:
    """(construct path, rule, reason) for every cdk-nag acknowledgment recorded in the stack's metadata."""
    manifest = json.loads((assembly.directory / "manifest.json").read_text())
    artifact = manifest["artifacts"][assembly.stack_name]
    metadata = dict(artifact.get("metadata", {}))
    if "additionalMetadataFile" in artifact:
        metadata |= json.loads((assembly.directory / artifact["additionalMetadataFile"]).read_text())
    return [
        (path, rule, reason)
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
    ]


def test_every_acknowledgment_gives_a_reason(assembly):
    acknowledgments = _acknowledgments(assembly)
    # the stack acknowledges L1, SQS3, SF1 and IAM5 findings: finding none means the metadata moved
    assert {rule.split("[")[0] for _, rule, _ in acknowledgments} >= {
        "Annotation::AwsSolutions-L1",
        "Annotation::AwsSolutions-SQS3",
        "Annotation::AwsSolutions-SF1",
        "Annotation::AwsSolutions-IAM5",
    }
    for path, rule, reason in acknowledgments:
        assert isinstance(reason, str) and len(reason.strip()) >= 20, (path, rule, reason)


def test_acknowledgments_are_narrow(assembly):
    """Acknowledged on the construct that has the finding, never the whole stack; IAM5 only for named findings."""
    for path, rule, _ in _acknowledgments(assembly):
        assert path.count("/") >= 2, f"{rule} acknowledged for all of {path}"
        if rule.startswith("Annotation::AwsSolutions-IAM5"):
            assert "[" in rule, f"blanket IAM5 acknowledgment on {path} hides every future wildcard"
