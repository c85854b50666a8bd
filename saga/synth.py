"""Synthesize the CDK app in-process into a cloud assembly directory (what `cdk deploy` uploads)."""

import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # where app.py and cdk.json live
CDK_JSON = ROOT / "cdk.json"


class SynthError(RuntimeError):
    """The app cannot be synthesized here (no Node.js, or invalid settings)."""


def synthesize(outdir: Path, context: dict | None = None) -> Path:
    """Run the CDK app (``stacks.app.build_app``) into ``outdir`` with cdk.json's context, as the CDK CLI would.

    ``context`` adds to or overrides it, like ``cdk synth -c key=value``. The CDK's
    jsii runtime runs on Node.js, so that must be installed.
    """
    if shutil.which("node") is None:
        raise SynthError("Node.js is not installed: the CDK needs it to synthesize the app (Node 20 or newer)")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from stacks.app import build_app  # loads aws-cdk-lib (a second or two), so only when needed

    # The CLI records each resource's construct path, and API Gateway's deployment id hashes the API's resources
    # with their metadata: without it the deployment would get another logical id than `cdk deploy` gives it.
    merged = {
        "aws:cdk:enable-path-metadata": True,
        **json.loads(CDK_JSON.read_text()).get("context", {}),
        **(context or {}),
    }
    try:
        build_app(context=merged, outdir=str(outdir)).synth()
    except ValueError as error:
        raise SynthError(f"cannot synthesize the app: {error}") from error
    return Path(outdir)
