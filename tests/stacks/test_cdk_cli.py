"""The pinned CDK CLI synthesizes the very template the tests and the local cloud use.

`cdk synth` runs app.py through cdk.json with the CLI's own context; the tests
synthesize in-process. If the two ever differ (a context flag missing from the
in-process synth, say), the tests would be checking something `cdk deploy`
never ships.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
CLI_ONLY = {"CDKMetadata", "CDKMetadataAvailable"}  # version reporting, which only the CLI turns on


def comparable(template: dict) -> dict:
    """The template without what only differs by who ran the synth: metadata and version reporting."""
    return {
        section: {
            name: {key: value for key, value in body.items() if key != "Metadata"} if isinstance(body, dict) else body
            for name, body in entries.items()
            if name not in CLI_ONLY
        }
        for section, entries in template.items()
        if isinstance(entries, dict) and section != "Conditions"
    }


def test_cdk_synth_produces_the_tested_template_and_assets(assembly, tmp_path):
    assert CDK.exists(), "the pinned CDK CLI is missing: run `npm ci` (./dev does it on first run)"
    outdir = tmp_path / "cdk.out"
    venv_bin = str(Path(sys.executable).parent)  # `python3 app.py` must find this interpreter's aws-cdk-lib
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(outdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr

    cli_template = json.loads((outdir / "BookingSaga.template.json").read_text())
    assert comparable(cli_template) == comparable(assembly.template)
    assert code_assets(outdir) == code_assets(assembly.directory)


def code_assets(assembly_dir: Path) -> set[str]:
    """The Lambda code assets by content hash (the template, also an asset, differs by its metadata)."""
    files = json.loads((assembly_dir / "BookingSaga.assets.json").read_text())["files"]
    return {asset_hash for asset_hash, asset in files.items() if asset["source"].get("packaging") == "zip"}
