"""The local cloud for integration tests: the session's synthesized app, deployed into a fresh local cloud once
per test module, with the sample catalog loaded."""

from pathlib import Path

import pytest

from saga.catalog import SAMPLE_CATALOG, load_catalog, seed
from saga.cli import main
from saga.deployment import Deployment, find_deployment
from saga.localcloud import LocalCloud

WAIT_SCALE = 0.01


@pytest.fixture(scope="module")
def lambda_logs(request, tmp_path_factory) -> Path | None:
    """Where the module's local cloud keeps each function's prints and logs (``<function name>.log``):
    a fresh directory for a module that sets ``KEEP_LAMBDA_LOGS = True``, and nowhere for the others."""
    return tmp_path_factory.mktemp("lambda-logs") if getattr(request.module, "KEEP_LAMBDA_LOGS", False) else None


@pytest.fixture(scope="module")
def cloud(assembly, request, lambda_logs):
    """The stack deployed into a fresh local cloud, once per test module (deploying takes about 2 s).

    Retry waits run at 1/100 of real time, so a compensation exhausting its retries
    takes seconds; timeouts stay real, as they only matter when something hangs,
    unless the module sets its own ``TIMEOUT_SCALE``. DynamoDB transactions are in progress
    for the local cloud's default window, unless the module sets ``TRANSACTION_WINDOW``.
    """
    settings = {"timeout_scale": getattr(request.module, "TIMEOUT_SCALE", 1.0), "log_dir": lambda_logs}
    if hasattr(request.module, "TRANSACTION_WINDOW"):
        settings["transaction_window"] = request.module.TRANSACTION_WINDOW
    with LocalCloud(wait_scale=WAIT_SCALE, **settings) as cloud:
        cloud.deploy(assembly.directory, assembly.stack_name)
        yield cloud


@pytest.fixture(scope="module")
def deployment(cloud, assembly) -> Deployment:
    """The deployed saga, found by its stack outputs, with the sample catalog loaded."""
    deployment = find_deployment(
        assembly.stack_name, endpoint_url=cloud.endpoint_url, dynamodb_endpoint_url=cloud.dynamodb_endpoint_url
    )
    seed(deployment, load_catalog(SAMPLE_CATALOG))
    return deployment


@pytest.fixture
def saga_on_cloud(cloud, capsys):
    """Run `saga ARGS --endpoint-url <local cloud>`; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*args, "--endpoint-url", cloud.endpoint_url])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def saga(saga_on_cloud, deployment):
    """``saga_on_cloud`` once the orchestrated saga is deployed."""
    return saga_on_cloud
