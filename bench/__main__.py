"""``python -m bench``: run the benchmark, print its table, write its JSON and PNG."""

import argparse
import gc
import os
import sys
import tempfile
from pathlib import Path

DEFAULTS = {
    "bookings": 50,
    "concurrency": 4,
    "cost_runs": 3,
    "cold_runs": 5,
    "demo_runs": 3,
    "contention": 200,
    "loops": True,
}
QUICK = {
    "bookings": 6,
    "concurrency": 2,
    "cost_runs": 1,
    "cold_runs": 2,
    "demo_runs": 1,
    "contention": 20,
    "loops": False,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Saga latency and throughput on the local cloud against moto's bare interpreter, AWS cost "
        "per million bookings, and cold start. Prints a table; writes benchmark.json and benchmark.png.",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory (%(default)s)")
    quick = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in QUICK.items() if name != "loops")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run of under a minute: {quick}, unless given")
    parser.add_argument("--bookings", type=_positive, help=f"bookings per measured batch ({DEFAULTS['bookings']})")
    parser.add_argument(
        "--concurrency",
        type=_positive,
        help=f"bookings in flight in the concurrent batches ({DEFAULTS['concurrency']})",
    )
    parser.add_argument(
        "--cost-runs", type=_positive, help=f"executions per path for the cost model ({DEFAULTS['cost_runs']})"
    )
    parser.add_argument(
        "--cold-runs", type=_positive, help=f"fresh interpreters per handler module ({DEFAULTS['cold_runs']})"
    )
    parser.add_argument("--demo-runs", type=_positive, help=f"timed warm runs of the demo ({DEFAULTS['demo_runs']})")
    parser.add_argument(
        "--contention",
        type=_positive,
        help=f"bookings at once for one hot flight, with transaction conflicts on ({DEFAULTS['contention']})",
    )
    parser.add_argument(
        "--loops",
        action=argparse.BooleanOptionalAction,
        help="the demo's warm time and saga local up's memory (default: on, off with --quick)",
    )
    parser.add_argument("--suite", action="store_true", help="time the whole test suite by group too (minutes)")
    parser.add_argument(
        "--designs",
        action="store_true",
        help="instead: the trip three ways (orchestrated, choreographed, atomic) per path: latency, throughput, "
        "cost, resources, handler lines; writes designs.json and designs.png",
    )
    args = parser.parse_args(argv)
    args.command = " ".join(["python -m bench", *argv])
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        # moto's request recorder (the cost model's source) picks its file when moto is first imported,
        # so this must be set before the benchmark's modules import the local cloud.
        os.environ["MOTO_RECORDER_FILEPATH"] = str(Path(workdir) / "moto-recording.jsonl")
        if args.designs:
            from bench.run import run_designs

            run_designs(args)
        else:
            from bench.run import run

            run(args, Path(workdir))
    return 0


if __name__ == "__main__":
    code = main()
    gc.freeze()  # the local clouds are closed: exit without collecting their objects, which takes a second or more
    sys.exit(code)
