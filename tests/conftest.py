"""What every test shares: the app synthesized once per session (it takes seconds), the --schedules option and
the reliability figures, and the kinds of test: everything under tests/integration runs the embedded local cloud
and is marked ``integration`` (``./dev check`` runs the rest)."""

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from saga.synth import cached_assembly

FIGURES = pytest.StashKey[Counter]()
INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        if "assembly" in getattr(item, "fixturenames", ()):
            # with pytest-xdist's --dist loadgroup, the tests of the synthesized app share one worker: one synth
            item.add_marker(pytest.mark.xdist_group("synthesized-app"))


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


def pytest_terminal_summary(terminalreporter, config):
    counts = config.stash.get(FIGURES, None)
    if counts:
        terminalreporter.section("reliability figures")
        for name, count in sorted(counts.items()):
            terminalreporter.write_line(f"{name:<48} {count:>8}")


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
