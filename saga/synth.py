"""Synthesize the CDK app in-process into a cloud assembly directory (what `cdk deploy` uploads).

Synthesizing takes seconds (aws-cdk-lib's import, jsii, cdk-nag); ``cached_assembly`` keeps each
assembly under ``.cache/assemblies/`` by a digest of everything it is made from (the app's sources,
the Lambda code, cdk.json, the context, the CDK's versions), so the demo, `saga local up` and the
tests synthesize only after a change (``SAGA_CACHE_DIR`` moves the cache elsewhere). Assemblies unused for a
week are removed.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from saga.node import find_node

ROOT = Path(__file__).resolve().parent.parent  # where app.py and cdk.json live
CDK_JSON = ROOT / "cdk.json"
CACHE = Path(os.environ.get("SAGA_CACHE_DIR") or ROOT / ".cache") / "assemblies"
# What an assembly is made from: change any of it and the cache misses.
SOURCES = ("app.py", "cdk.json", "stacks", "lambdas", "saga/synth.py")
LIBRARIES = ("aws-cdk-lib", "constructs", "cdk-nag", "cdklabs.cdk-validator-cfnguard")  # the last: its Guard rules
UNUSED_DAYS = 7  # an assembly unused this long is removed after the next synth


class SynthError(RuntimeError):
    """The app cannot be synthesized here (no Node.js, or invalid settings)."""


def synthesize(outdir: Path, context: dict | None = None) -> Path:
    """Run the CDK app (``stacks.app.build_app``) into ``outdir`` with cdk.json's context, as the CDK CLI would.

    ``context`` adds to or overrides it, like ``cdk synth -c key=value``. The CDK's jsii runtime runs on
    Node.js: the project's own Node 22 where `npm ci` installed it, else the system's (``saga.node``).
    """
    node = find_node()
    if node is None:
        raise SynthError(
            "Node.js is not installed: the CDK needs it to synthesize the app (Node 22; on Linux, `npm ci` installs it)"
        )
    os.environ.setdefault("JSII_NODE", node.path)  # jsii's setting for which node it starts, else the first on PATH
    if not node.supported:  # jsii warns on every start under a Node past its end of life, in 11 lines
        os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", str(node.major))
    # The cfn-guard plugin goes through AppProps.policyValidationBeta1, deprecated only in favour of a successor
    # aws-cdk-lib does not have yet; jsii would warn about it on every synth.
    os.environ.setdefault("JSII_DEPRECATED", "quiet")
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


def cached_assembly(context: dict | None = None) -> Path:
    """The assembly ``synthesize`` would write for this context, from the cache while the sources are unchanged.

    Concurrent callers (test workers) may synthesize the same one at once: each writes its own directory and
    moves it into place in one rename, and a loser keeps the winner's."""
    key = _digest(context or {})
    assembly = CACHE / key
    if (assembly / "manifest.json").is_file():
        os.utime(assembly)  # used now: kept by ``_prune``
        return assembly
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=CACHE))
    try:
        synthesize(partial / "cdk.out", context)
        os.replace(partial / "cdk.out", assembly)
    except OSError:
        if not (assembly / "manifest.json").is_file():  # not a lost race: a real failure
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    _prune()
    return assembly


def _prune() -> None:
    """Remove the assemblies nothing has used for ``UNUSED_DAYS`` (each change to the sources leaves one behind)."""
    cutoff = time.time() - UNUSED_DAYS * 86_400
    for entry in CACHE.iterdir():
        if entry.is_dir() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


def _digest(context: dict) -> str:
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode())
    for library in LIBRARIES:
        digest.update(f"{library}=={version(library)}".encode())
    for source in SOURCES:
        path = ROOT / source
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:20]
