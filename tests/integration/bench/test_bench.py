"""`python -m bench --quick` runs end to end and writes figures of the right shape.

The figures themselves are printed, never asserted: only counts that follow from the
saga's structure (states, invocations, retries, units per write) and sanity bounds.
It runs in a subprocess, since a test module may already host this process's one local cloud.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cold_start import PARTS
from stacks.saga_chain import COMPENSATION_RETRIES

ROOT = Path(__file__).resolve().parents[3]
FAILURES = ("fail_at_flight", "fail_at_hotel", "fail_at_payment", "compensation_failed")
# (state transitions, Lambda invocations) per path: one transition per state entered and per retry.
EXPECTED_COUNTS = {
    "happy": (4, 3),  # three reserves, BookingConfirmed
    "fail_at_flight": (3, 2),  # ReserveFlight, CancelFlight, BookingFailed
    "fail_at_hotel": (5, 4),
    "fail_at_payment": (7, 6),  # three reserves, three cancels, BookingFailed
    # three reserves, RefundPayment, CancelHotel failing on every attempt, SendToDeadLetterQueue, CompensationFailed
    "compensation_failed": (7 + COMPENSATION_RETRIES, 4 + 1 + COMPENSATION_RETRIES),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench-results")
    result = subprocess.run(
        # two bookings per batch and one fresh interpreter per cold start, fewer than the quick run's six and two:
        # every cell, ratio and part is there all the same
        [sys.executable, "-m", "bench", "--quick", "--bookings", "2", "--cold-runs", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "benchmark.json").read_text()), out, result.stdout


def test_it_writes_a_chart_and_prints_the_table(run):
    results, out, stdout = run
    assert (out / "benchmark.png").read_bytes().startswith(b"\x89PNG")
    for heading in ("Local speed", "Overhead of the real handlers", "Speedups", "AWS cost", "Cold start", "Contention"):
        assert heading in stdout
    assert "without the transactions' modelled time in progress" in stdout
    assert results["command"] == f"python -m bench --quick --bookings 2 --cold-runs 1 --out {out}"
    assert results["settings"]["bookings_per_batch"] == 2
    assert results["machine"]["nproc"] >= 1 and results["machine"]["python"]


def test_local_speed_covers_every_engine_cache_path_and_concurrency(run):
    results, _, _ = run
    cells = results["local"]["cells"]
    concurrencies = sorted({1, results["settings"]["concurrency"]})
    assert {(c["engine"], c["speedups"], c["scenario"], c["concurrency"]) for c in cells} == {
        (engine, speedups, scenario, concurrency)
        for engine in ("local_cloud", "bare_interpreter")
        for speedups in ("none", "parse_cache", "all")
        for scenario in ("happy", "fail_at_payment")
        for concurrency in concurrencies
    }
    for cell in cells:
        assert cell["bookings"] == results["settings"]["bookings_per_batch"]
        assert 0 < cell["p50_ms"] <= cell["p95_ms"]
        assert cell["throughput_per_s"] > 0
    # the local cloud over the bare interpreter at each level; each level over the one below, per engine
    assert len(results["local"]["overhead"]) == len(cells) // 2
    assert {gain["added"] for gain in results["local"]["speedups"]} == {"parse_cache", "all"}
    assert len(results["local"]["speedups"]) == len(cells) * 2 // 3
    unheld = results["local"]["overhead_without_transaction_window"]
    assert [ratio["scenario"] for ratio in unheld] == ["happy", "fail_at_payment"]
    for ratio in results["local"]["overhead"] + results["local"]["speedups"] + unheld:
        assert all(value > 0 for name, value in ratio.items() if name.endswith(("ratio", "speedup", "_ms")))


def test_the_cost_model_counts_what_the_saga_does(run):
    results, _, _ = run
    cost = results["cost"]
    assert cost["functions"] == {"memory_mb": 256, "architecture": "arm64"}
    assert set(cost["paths"]) == set(EXPECTED_COUNTS)
    for path, (transitions, invocations) in EXPECTED_COUNTS.items():
        used = cost["paths"][path]["ours"]["per_booking"]
        assert (used["state_transitions"], used["lambda_invocations"]) == (transitions, invocations), path
        assert used["lambda_billed_ms"] >= invocations  # at least 1 ms each
        assert used["lambda_gb_seconds"] == pytest.approx(used["lambda_billed_ms"] / 1000 / 4)
    happy = cost["paths"]["happy"]["ours"]["per_booking"]
    # Reserving is one transaction each: flight and hotel write record and inventory, payment its record;
    # a transactional write costs 2 WRU per item (all far under 1 KB). Accepting the booking into the bookings
    # table is a conditional put and an update: 1 WRU each.
    assert (happy["dynamodb_write_units"], happy["dynamodb_read_units"], happy["sqs_requests"]) == (12, 0, 0)
    accept = cost["paths"]["happy"]["states"][0]
    assert (accept["name"], accept["state_transitions"], accept["dynamodb_write_units"]) == ("AcceptBooking", 0, 2)
    assert cost["largest_item_written_bytes"] < 1024
    assert cost["paths"]["compensation_failed"]["ours"]["per_booking"]["sqs_requests"] == 1
    usd = cost["paths"]["happy"]["ours"]["usd_per_million_bookings"]
    assert usd["total"] == pytest.approx(sum(value for name, value in usd.items() if name != "total"))
    assert usd["step_functions"] == pytest.approx(4 * 25)  # $0.025 per 1,000 transitions


def test_skipping_the_failing_steps_own_cancel_is_cheaper_only_where_a_step_fails(run):
    paths = run[0]["cost"]["paths"]
    for path in FAILURES:
        ours, skipping = paths[path]["ours"], paths[path]["skip_own_cancel"]
        assert skipping["usd_per_million_bookings"]["total"] < ours["usd_per_million_bookings"]["total"], path
        assert skipping["per_booking"]["state_transitions"] == ours["per_booking"]["state_transitions"] - 1
        assert skipping["per_booking"]["lambda_invocations"] == ours["per_booking"]["lambda_invocations"] - 1
    assert paths["fail_at_payment"]["skipped_by_alternative"] == "RefundPayment"
    assert paths["happy"]["skipped_by_alternative"] is None
    assert paths["happy"]["skip_own_cancel"] == paths["happy"]["ours"]


def test_cold_start_measures_each_handler_module(run):
    results, _, _ = run
    cold = results["cold_start"]
    assert set(cold["modules"]) == {"flight", "hotel", "payment"}
    assert set(cold["parts_import_ms"]) == set(PARTS) and all(ms > 0 for ms in cold["parts_import_ms"].values())
    for figures in cold["modules"].values():
        assert figures["import_ms"] > 0 and figures["first_invoke_ms"] > 0
        assert len(figures["import_ms_runs"]) == results["settings"]["cold_runs"]
        # Lambda's "Max Memory Used": the handler fits in the function's configured memory.
        assert 0 < figures["rss_after_import_mb"] <= figures["peak_rss_mb"] < results["cost"]["functions"]["memory_mb"]


def test_contention_sells_every_room_and_counts_the_conflicts(run):
    results, _, stdout = run
    hot = results["contention"]
    assert (hot["bookings"], hot["seats"], hot["rooms"]) == (20, 5, 3)
    # the hotel is the bottleneck: every room sold, every other booking compensated because it was sold out
    assert hot["verdicts"] == {"confirmed": hot["rooms"], "compensated": hot["bookings"] - hot["rooms"]}
    assert hot["errors"] == {"SoldOut": hot["bookings"] - hot["rooms"]}
    assert hot["conflicts"] == sum(hot["conflicts_by_operation"].values())
    assert 0 <= hot["handler_retries"] <= hot["conflicts"]
    assert hot["seconds"] > 0
    assert "Contention: 20 bookings at once" in stdout
