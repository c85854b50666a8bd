"""Session-wide fixtures: the app is synthesized once (it takes seconds), every test reads it."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


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
    from app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    build_app(outdir=str(outdir)).synth()
    return Assembly(outdir, "BookingSaga")
