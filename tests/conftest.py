"""What every test shares: the app synthesized once per session (it takes seconds), the --schedules option and
the reliability figures, and the kinds of test: everything under tests/integration runs the embedded local cloud
and is marked ``integration`` (``./dev check`` runs the rest).

``./dev`` runs the tests on a worker per core and two more (pytest-xdist; ``--dist loadgroup`` comes from
pyproject.toml). An integration module deploys its own local cloud once (module-scoped fixtures), so its tests stay
together on one worker, unless a test names a group of its own. The tests that synthesize stacks in their own process
share a worker too: a process's first synth costs about 3 s of CPU in jsii's Node.js. The figures each worker counts
are added up in the controller's summary."""

import gc
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from saga.synth import cached_assembly

FIGURES = pytest.StashKey[Counter]()
INTEGRATION = Path(__file__).parent / "integration"
SYNTHESIZING = (Path(__file__).parent / "stacks", Path(__file__).parent / "test_fourth_service.py")
# The integration modules that take 25 s or more on 2 cores, longest first: handed out before the others.
LONGEST = (
    "test_designs.py",
    "bench/test_bench.py",
    "test_contention.py",
    "test_uncatchable_ends.py",
    "saga/test_cli.py",
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reads the groups, in the same hook
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark and group the integration tests and the synthesizing ones, and put the longest work first:
    pytest-xdist hands out groups in this order (pyproject.toml turns its reordering off). The synthesizing tests
    (about 25 s, mostly CPU) start beside the reliability shards, which mostly wait on timeouts; then the longest
    integration modules, then the others; the hundreds of short tests fill the end, so that no half-minute group
    starts last."""
    starts: dict[str, tuple[int, int]] = {}
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
            module = item.path.relative_to(INTEGRATION).as_posix()
            if item.get_closest_marker("xdist_group") is not None:  # a shard
                starts[item.nodeid] = (1, 0)
            else:
                item.add_marker(pytest.mark.xdist_group(module))
                starts[item.nodeid] = (2, LONGEST.index(module)) if module in LONGEST else (3, 0)
        elif any(path == item.path or path in item.path.parents for path in SYNTHESIZING):
            item.add_marker(pytest.mark.xdist_group("synthesizing"))
            starts[item.nodeid] = (0, 0)
    items.sort(key=lambda item: starts.get(item.nodeid, (4, 0)))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: a worker per core and two more. The integration tests wait on the local cloud (timeouts, retry
    waits, the reconciler's pauses) for about a third of their time, which the extra workers fill: on 2 cores the
    suite took 163 to 175 s with 3 workers, 156 to 157 s with 4 and 161 s with 5 (more workers, more of the CPU
    each spends starting). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it."""
    if chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(chosen)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 2


def pytest_addoption(parser):
    parser.addoption(
        "--schedules",
        type=int,
        default=200,
        help="fault schedules the reliability test runs on the local cloud (default: %(default)s)",
    )


@pytest.fixture(scope="session")
def figures(request) -> Counter:
    """Counts a test wants reported at the end of the run (the reliability figures)."""
    return request.config.stash.setdefault(FIGURES, Counter())


def pytest_sessionfinish(session) -> None:
    """On an xdist worker: hand the figures to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["figures"] = dict(session.config.stash.get(FIGURES, Counter()))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """On the xdist controller: add up what a worker counted."""
    node.config.stash.setdefault(FIGURES, Counter()).update(node.workeroutput.get("figures", {}))


def pytest_unconfigure(config) -> None:
    """Let the process end without collecting its garbage: what the tests opened is closed by now, and collecting a
    worker's heap (moto's and botocore's models, many times over) as the interpreter ends took 1 to 3 s at the end of
    every run."""
    gc.freeze()


def pytest_terminal_summary(terminalreporter, config):
    counts = config.stash.get(FIGURES, None)
    if counts:
        terminalreporter.section("reliability figures")
        width = max(map(len, counts))
        for name, count in sorted(counts.items()):
            terminalreporter.write_line(f"{name:<{width}} {count:>8}")


@dataclass(frozen=True)
class Assembly:
    """A synthesized cloud assembly: the directory `cdk deploy` would upload, and the stack's template."""

    directory: Path
    stack_name: str

    @property
    def template(self) -> dict:
        return json.loads((self.directory / f"{self.stack_name}.template.json").read_text())


@pytest.fixture(scope="session")
def assembly() -> Assembly:
    """The app as `cdk synth` writes it, synthesized again only when its sources changed (``cached_assembly``)."""
    return Assembly(cached_assembly(), "BookingSaga")
