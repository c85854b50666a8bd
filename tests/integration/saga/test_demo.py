"""The README's first command, run as users run it: synth, deploy locally, two bookings, tables."""

import os
import subprocess
import sys
from pathlib import Path

from saga.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_confirms_one_trip_and_compensates_the_other():
    result = subprocess.run(
        [sys.executable, "-m", "saga", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "Booking trip-0001: a trip that is confirmed" in out
    assert "=> CONFIRMED" in out
    assert "✗ ProcessPayment" in out and "ChaosFailure: forced to fail by chaos.fail_at=payment" in out
    undone = [line.split()[1] for line in out.splitlines() if line.strip().startswith("↶")]
    assert undone == ["RefundPayment", "CancelHotel", "CancelFlight"]
    assert "=> COMPENSATED" in out
    before, after = out.split("Tables after")
    assert "NH101 180/180" in before and "NH101 178/180" in after  # only the confirmed trip's two seats
    assert "TOKYO-GRAND 40/40" in before and "TOKYO-GRAND 39/40" in after
    assert "trip-0002              CANCELLED" in after


def test_without_node_the_demo_says_what_is_missing(tmp_path, monkeypatch, capsys):
    """The CDK synthesizes through Node.js; with neither the project's own nor one on PATH, the user gets one line,
    not a jsii traceback."""
    monkeypatch.setattr("saga.node.PROJECT_NODE", tmp_path / "node_modules" / ".bin" / "node")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("saga.synth.CACHE", tmp_path / "cache")  # nothing cached

    code = main(["demo"])

    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "saga: error: Node.js is not installed: the CDK needs it to synthesize the app "
        "(Node 22; on Linux, `npm ci` installs it)"
    )
