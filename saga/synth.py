"""Synthesize the CDK app in-process into a cloud assembly directory (what `cdk deploy` uploads)."""

import os
import shutil
from pathlib import Path


class SynthError(RuntimeError):
    pass


def synthesize(outdir: Path, context: dict | None = None) -> Path:
    """Run app.py's build_app into ``outdir``; needs Node.js, which the CDK's jsii runtime runs on."""
    if shutil.which("node") is None:
        raise SynthError("Node.js is not installed: the CDK needs it to synthesize the app (Node 20 or newer)")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from app import build_app  # loads aws-cdk-lib (a second or two), so only when needed

    build_app(context=context, outdir=str(outdir)).synth()
    return Path(outdir)
