"""The benchmark's phases in order: synthesize once, then one fresh local cloud per engine and level of speedups."""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import cold_start, contention, designs, local, loops, prices, report
from bench import cost as cost_model
from bench.callers import callers
from bench.session import TIMEOUT_SCALE, WAIT_SCALE, deployed
from saga.synth import cached_assembly

ENGINES = (("local_cloud", None), ("bare_interpreter", local.instant_invoker))


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, workdir: Path) -> None:
    started, date = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    progress("synthesizing the CDK app (a few seconds)")
    assembly = cached_assembly()
    concurrencies = sorted({1, 2, args.concurrency})
    cells, cost, cold = [], {}, {}
    with callers(max(concurrencies)) as clients:
        for engine, invoker in ENGINES:
            for speedups, options in reversed(local.SPEEDUPS.items()):
                progress(f"deploying into a fresh local cloud: {engine}, speedups {speedups}")
                with deployed(assembly, max(concurrencies), invoker=invoker, **options) as session:
                    measured = local.measure(session, clients, engine, speedups, args.bookings, concurrencies, progress)
                    cells += [cell.to_json() for cell in measured]
                    if invoker is None and speedups == "all":  # the local cloud as shipped
                        cost = cost_model.measure(session, args.cost_runs, progress)
                        cold = cold_start.measure(session, assembly, args.cold_runs, progress)
        progress("deploying into a fresh local cloud: local_cloud with no transaction in progress")
        with deployed(assembly, transaction_window=0) as session:
            unheld = local.measure(session, clients, "local_cloud_no_window", "all", args.bookings, [1], progress)
    hot = contention.measure(assembly, args.contention, progress)
    measured_loops = {}
    if args.loops:
        measured_loops["demo"] = loops.demo_seconds(args.demo_runs, progress)
        measured_loops["memory"] = loops.local_up_memory(args.bookings, progress)
    if args.suite:
        measured_loops["suite"] = loops.suite_seconds(progress)
    overhead, gains = local.ratios(cells)
    results = {
        "command": args.command,
        "date": date,  # when the run started
        "machine": machine(),
        "settings": {
            "quick": args.quick,
            "bookings_per_batch": args.bookings,
            "concurrency": args.concurrency,
            "cost_runs": args.cost_runs,
            "cold_runs": args.cold_runs,
            "contention": args.contention,
            "loops": args.loops,
            "suite": args.suite,
            "wait_scale": WAIT_SCALE,
            "timeout_scale": TIMEOUT_SCALE,
        },
        "local": {
            "cells": cells,
            "overhead": overhead,
            "overhead_without_transaction_window": local.overhead_without_transaction_window(unheld, cells),
            "speedups": gains,
        },
        "cost": cost,
        "cold_start": cold,
        "contention": hot,
        "loops": measured_loops,
    }
    results["seconds"] = time.monotonic() - started
    json_path, png_path = report.write(results, args.out)
    print(report.table(results))
    progress(f"wrote {json_path} and {png_path} in {results['seconds']:.0f} s")


def run_designs(args: argparse.Namespace) -> None:
    """``--designs``: each design's paths (``bench.designs``), ``args.bookings`` runs each, printed and charted."""
    progress("synthesizing the CDK app (a few seconds)")
    results = designs.measure(cached_assembly(), args.bookings, args.concurrency, progress)
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"command": args.command, "machine": machine(), "prices": prices.as_json(), "designs": results}
    (args.out / "designs.json").write_text(json.dumps(document, indent=2))
    designs.chart(results, args.out / "designs.png")
    print(designs.table(results))
    progress(f"wrote {args.out / 'designs.json'} and {args.out / 'designs.png'}")


def machine() -> dict:
    """What the figures came from."""
    return {
        "nproc": len(os.sched_getaffinity(0)),  # what `nproc` prints
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "moto": metadata.version("moto"),
        "boto3": metadata.version("boto3"),
    }


def _cpu_model() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    return next(
        (line.partition(":")[2].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "unknown"
    )
