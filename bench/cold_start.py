"""Cold start: each handler module's import in a fresh interpreter, and the memory of its first invocation.

Each run is a new process (``cold_start_probe.py``) with the deployed function's own
environment, pointed at the local cloud, importing the module from the synthesized Lambda
asset (what ``cdk deploy`` uploads). The medians of several runs are reported, beside
the import of each of the handler's parts alone (``PARTS``): boto3 is most of it.
"""

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench import prices
from bench.session import Session, booking
from booking_saga.services import SERVICES

PROBE = Path(__file__).with_name("cold_start_probe.py")
# What a handler's import is made of, each imported alone in a fresh interpreter: the AWS SDK, Powertools as the
# handlers set it up (Logger and Metrics), and the X-Ray SDK, which they import only where X-Ray takes traces.
PARTS = {
    "boto3": "boto3",
    "Powertools Logger and Metrics": "booking_saga.observability",
    "X-Ray SDK (tracing on)": "aws_xray_sdk.core",
}
MODULES = tuple(service.name for service in SERVICES)  # each service's handler module: flight.py, ...
_STEPS = {service.name: service.reserve_state for service in SERVICES}


def lambda_asset(assembly: Path) -> Path:
    """The directory ``cdk deploy`` zips for the functions: the stack's one zip-packaged file asset."""
    manifest = json.loads((assembly / "BookingSaga.assets.json").read_text())
    zipped = [asset["source"]["path"] for asset in manifest["files"].values() if asset["source"]["packaging"] == "zip"]
    if len(zipped) != 1:
        raise RuntimeError(f"expected one Lambda code asset in {assembly}, found {zipped}")
    return assembly / zipped[0]


def _environment(session: Session, module: str) -> dict[str, str]:
    """The reserve function's deployed environment, and what Lambda adds, as the local cloud's worker has it."""
    functions = session.deployment.client("lambda").list_functions()["Functions"]
    function = next(function for function in functions if function["Handler"] == f"{module}.reserve")
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        **function.get("Environment", {}).get("Variables", {}),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": session.cloud.endpoint_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _event(module: str, booking_id: str) -> dict:
    """What the state machine sends the reserve step."""
    execution = f"arn:aws:states:us-east-1:123456789012:execution:Cold:{booking_id}"
    return {"step": _STEPS[module], "execution": execution, "booking": booking(booking_id)}


def _probe(code_dir: Path, module: str, environment: dict[str, str], event: dict | None) -> dict:
    command = [sys.executable, "-I", "-B", str(PROBE), str(code_dir), module]
    if event is not None:
        command.append(json.dumps(event))
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cold start probe of {module} failed: {result.stderr.strip()}")
    return json.loads(result.stdout.splitlines()[-1])


def measure(session: Session, assembly: Path, runs: int, progress: Callable[[str], None]) -> dict:
    billing = session.lambda_billing()
    code_dir = lambda_asset(assembly)
    environment = _environment(session, MODULES[0])
    parts = {}
    for part, module in PARTS.items():
        progress(f"cold start: {part} alone, {runs} fresh interpreters")
        parts[part] = statistics.median(_probe(code_dir, module, environment, None)["import_ms"] for _ in range(runs))
    modules = {}
    for module in MODULES:
        progress(f"cold start: {module}, {runs} fresh interpreters")
        environment = _environment(session, module)
        samples = [_probe(code_dir, module, environment, _event(module, f"cold-{module}-{run}")) for run in range(runs)]
        modules[module] = {
            name: statistics.median(sample[name] for sample in samples)
            for name in ("import_ms", "first_invoke_ms", "rss_after_import_mb", "peak_rss_mb")
        } | {"import_ms_runs": [sample["import_ms"] for sample in samples]}
    slowest = max(module["import_ms"] for module in modules.values())
    gb_seconds = slowest / 1000 * billing["memory_mb"] / 1024
    return {
        "runs": runs,
        "parts_import_ms": parts,
        "modules": modules,
        # Lambda bills the init phase too: what one cold start of the slowest module costs, per million.
        "init_usd_per_million_cold_starts": gb_seconds * prices.LAMBDA_GB_SECOND[billing["architecture"]] * 1e6,
    }
