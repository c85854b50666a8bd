"""How ``./dev test`` spreads the suite over the cores: each integration module stays on one worker, the tests that
synthesize stacks share one, and the longest work is handed out first.

An integration module deploys its local cloud once, in a module-scoped fixture. If its tests were spread over
the workers, each worker would deploy it again (and a module that times something, like the benchmark's, would
run it twice). These run small suites grouped and ordered by this suite's own hook, as ``./dev`` runs them.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFTEST = """
from pathlib import Path

import tests.conftest as suite

suite.INTEGRATION = Path(__file__).parent / "{integration}"  # group these modules as the suite groups tests/integration
suite.SYNTHESIZING = (Path(__file__).parent / "stacks",)  # and these as it groups its synthesizing tests
suite.LONGEST = ("test_longest.py", "test_long.py")
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
SYNTHESIZING = """
import os

import pytest


@pytest.mark.parametrize("step", range(6))
def test_step(step):
    with open("workers", "a") as workers:
        workers.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""
SHARDED = """
import pytest


@pytest.mark.parametrize("shard", [pytest.param(n, marks=pytest.mark.xdist_group(f"shard-{n}")) for n in range(2)])
def test_shard(shard):
    pass
"""


def test_an_integration_module_is_set_up_once_on_one_worker(tmp_path):
    names = ["flight", "hotel", "payment"]
    for name in names:
        (tmp_path / f"test_{name}.py").write_text(MODULE.format(name=name))
    result = pytest_in(tmp_path, ".", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder")
    assert sorted((tmp_path / "deployments").read_text().split()) == names, result


def test_the_synthesizing_tests_share_one_worker(tmp_path):
    (tmp_path / "stacks").mkdir()
    for name in ("stack", "constructs"):
        (tmp_path / "stacks" / f"test_{name}.py").write_text(SYNTHESIZING)
    result = pytest_in(tmp_path, "integration", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder")
    workers = (tmp_path / "workers").read_text().split()
    assert len(workers) == 12 and len(set(workers)) == 1, result


def test_the_synthesizing_tests_come_first_then_the_shards_the_longest_modules_and_the_short_tests_last(tmp_path):
    for directory in ("integration", "stacks"):
        (tmp_path / directory).mkdir()
    (tmp_path / "test_unit.py").write_text("def test_unit():\n    pass\n")
    for name in ("a_module", "long", "longest"):
        (tmp_path / "integration" / f"test_{name}.py").write_text(f"def test_in_{name}():\n    pass\n")
    (tmp_path / "integration" / "test_sharded.py").write_text(SHARDED)
    (tmp_path / "stacks" / "test_stack.py").write_text("def test_stack():\n    pass\n")

    collected = pytest_in(tmp_path, "integration", "--collect-only").splitlines()

    assert collected[:7] == [
        "stacks/test_stack.py::test_stack",
        "integration/test_sharded.py::test_shard[0]",
        "integration/test_sharded.py::test_shard[1]",
        "integration/test_longest.py::test_in_longest",
        "integration/test_long.py::test_in_long",
        "integration/test_a_module.py::test_in_a_module",
        "test_unit.py::test_unit",
    ]


def pytest_in(directory: Path, integration: str, *args: str) -> str:
    """Run pytest on the suite in ``directory`` (its integration tests under ``integration``); its quiet output."""
    (directory / "conftest.py").write_text(CONFTEST.format(integration=integration))
    (directory / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout
