"""How ``./dev test`` spreads the suite over the cores: each integration module stays on one worker.

An integration module deploys its local cloud once, in a module-scoped fixture. If its tests were spread over
the workers, each worker would deploy it again (and a module that times something, like the benchmark's, would
run it twice). This runs a small suite grouped by this suite's own hook, on two workers as ``./dev`` runs them.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFTEST = """
from pathlib import Path

import tests.conftest as suite

suite.INTEGRATION = Path(__file__).parent  # group these modules as the suite groups tests/integration
pytest_collection_modifyitems = suite.pytest_collection_modifyitems
"""
MODULE = """
import pytest


@pytest.fixture(scope="module")
def deployment():
    with open("deployments", "a") as deployments:
        deployments.write("{name}\\n")


@pytest.mark.parametrize("step", range(6))
def test_step(deployment, step):
    pass
"""


def test_an_integration_module_is_set_up_once_on_one_worker(tmp_path):
    names = ["flight", "hotel", "payment"]
    for name in names:
        (tmp_path / f"test_{name}.py").write_text(MODULE.format(name=name))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sorted((tmp_path / "deployments").read_text().split()) == names
