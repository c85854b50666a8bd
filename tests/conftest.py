"""Session-wide fixtures: the app is synthesized once (it takes seconds), every test reads it."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from saga.synth import synthesize


@dataclass(frozen=True)
class Assembly:
    """A synthesized cloud assembly: the directory `cdk deploy` would upload, and the stack's template."""

    directory: Path
    stack_name: str

    @property
    def template(self) -> dict:
        return json.loads((self.directory / f"{self.stack_name}.template.json").read_text())


@pytest.fixture(scope="session")
def assembly(tmp_path_factory) -> Assembly:
    return Assembly(synthesize(tmp_path_factory.mktemp("cdk.out")), "BookingSaga")
