"""The benchmark's outputs: a plain-text table on stdout, ``benchmark.json`` and ``benchmark.png``."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt  # after choosing the backend

ENGINE_NAMES = {"local_cloud": "local cloud", "bare_interpreter": "bare interpreter"}
LEVEL_NAMES = {"all": "all (as shipped)", "parse_cache": "parse cache only", "none": "none (stock moto)"}
COLORS = {
    ("local_cloud", "all"): "#1f4e79",
    ("local_cloud", "parse_cache"): "#2e75b6",
    ("local_cloud", "none"): "#9dc3e6",
    ("bare_interpreter", "all"): "#c55a11",
    ("bare_interpreter", "parse_cache"): "#f4b183",
    ("bare_interpreter", "none"): "#fbe5d6",
}
# A level's gain over the one below it is the speedup that level adds.
ADDED = {"parse_cache": "parse cache", "all": "client reuse"}
SERVICES = ("step_functions", "lambda_requests", "lambda_duration", "dynamodb", "sqs")


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / "benchmark.json", out / "benchmark.png"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, png_path)
    return json_path, png_path


def table(results: dict) -> str:
    settings, machine, cost, cold = results["settings"], results["machine"], results["cost"], results["cold_start"]
    prices, functions = cost["prices"], cost["functions"]
    lines = [
        f"{results['command']}  ({results['date']}; {machine['nproc']} x {machine['cpu']}, Python {machine['python']})",
        "",
        f"Local speed: start request to end of execution, {settings['bookings_per_batch']} bookings per batch "
        f"(retry waits x{settings['wait_scale']}; these paths have none)",
        *_grid(
            ("engine", "speedups", "path", "in flight", "p50 ms", "p95 ms", "bookings/s"),
            [
                (
                    ENGINE_NAMES[cell["engine"]],
                    LEVEL_NAMES[cell["speedups"]],
                    cell["scenario"],
                    cell["concurrency"],
                    f"{cell['p50_ms']:.1f}",
                    f"{cell['p95_ms']:.1f}",
                    f"{cell['throughput_per_s']:.1f}",
                )
                for cell in results["local"]["cells"]
            ],
        ),
        "",
        "Overhead of the real handlers: local cloud over bare interpreter (times; lower is better)",
        *_grid(
            ("speedups", "path", "in flight", "p50", "p95", "throughput"),
            [
                (
                    LEVEL_NAMES[ratio["speedups"]],
                    ratio["scenario"],
                    ratio["concurrency"],
                    f"{ratio['p50_ratio']:.2f}",
                    f"{ratio['p95_ratio']:.2f}",
                    f"{ratio['throughput_ratio']:.2f}",
                )
                for ratio in results["local"]["overhead"]
            ],
        ),
        "  one at a time without the transactions' modelled time in progress (transaction_window 0): "
        + ", ".join(
            f"{ratio['scenario']} {ratio['p50_ratio']:.2f} ({ratio['p50_ms']:.1f} ms)"
            for ratio in results["local"]["overhead_without_transaction_window"]
        ),
        "",
        "Speedups, each before and after it is added (parse cache to moto as shipped, then client reuse)",
        *_grid(
            ("engine", "added", "path", "in flight", "p50 before", "p50 after", "p50 speedup", "throughput gain"),
            [
                (
                    ENGINE_NAMES[ratio["engine"]],
                    ADDED[ratio["added"]],
                    ratio["scenario"],
                    ratio["concurrency"],
                    f"{ratio['p50_before_ms']:.1f}",
                    f"{ratio['p50_after_ms']:.1f}",
                    f"{ratio['p50_speedup']:.2f}",
                    f"{ratio['throughput_speedup']:.2f}",
                )
                for ratio in results["local"]["speedups"]
            ],
        ),
        "",
        f"AWS cost per booking, and US$ per million bookings ({prices['region']} on demand, prices checked "
        f"{prices['checked']}; Lambda {functions['memory_mb']} MB {functions['architecture']}; "
        f"mean of {cost['repetitions']} execution(s) per path)",
        *_grid(
            (
                "path",
                "local s",
                "transitions",
                "invocations",
                "billed ms",
                "RRU",
                "WRU",
                "SQS",
                "$ ours",
                "$ skip own",
                "$ safety",
            ),
            [_cost_row(path, figures) for path, figures in cost["paths"].items()],
        ),
        "",
        f"Cold start: median of {cold['runs']} fresh interpreters (Lambda bills init: "
        f"${cold['init_usd_per_million_cold_starts']:.2f} per million cold starts)",
        "  imported alone: "
        + ", ".join(f"{part} {milliseconds:.0f} ms" for part, milliseconds in cold["parts_import_ms"].items()),
        *_grid(
            ("module", "import ms", "first invoke ms", "RSS after import MB", "peak RSS MB"),
            [
                (
                    module,
                    f"{figures['import_ms']:.0f}",
                    f"{figures['first_invoke_ms']:.0f}",
                    f"{figures['rss_after_import_mb']:.0f}",
                    f"{figures['peak_rss_mb']:.0f}",
                )
                for module, figures in cold["modules"].items()
            ],
        ),
        *_contention(results["contention"]),
        *_loops(results.get("loops", {})),
    ]
    return "\n".join(lines)


def _contention(hot: dict) -> list[str]:
    """How a hot flight's bookings ended, and the transaction conflicts they met on the way."""
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(hot["verdicts"].items()))
    errors = ", ".join(f"{count} {error}" for error, count in sorted(hot["errors"].items())) or "none"
    refused = ", ".join(f"{count} {operation}" for operation, count in sorted(hot["conflicts_by_operation"].items()))
    return [
        "",
        f"Contention: {hot['bookings']} bookings at once for {hot['seats']} seats and {hot['rooms']} rooms, each "
        f"transaction in progress for {hot['transaction_window_s'] * 1000:g} ms",
        *_grid(
            ("figure", "value"),
            [
                ("outcome", verdicts),
                ("failed steps' errors", errors),
                ("writes refused: transaction conflicts", f"{hot['conflicts']} ({refused or 'none'})"),
                ("writes retried by the handlers", hot["handler_retries"]),
                ("reserves retried by the state machine", hot["state_machine_retries"]),
                ("seconds, first start to last end", f"{hot['seconds']:.1f}"),
            ],
        ),
    ]


def _loops(loops: dict) -> list[str]:
    """The waits people know: the demo warm, the local cloud's memory, the suite by group (when measured)."""
    lines = []
    if "demo" in loops:
        runs = ", ".join(f"{seconds:.1f}" for seconds in loops["demo"]["runs"])
        lines += ["", f"saga demo, warm: {loops['demo']['median_seconds']:.1f} s median ({runs})"]
    if "memory" in loops:
        memory = loops["memory"]
        lines += [
            "",
            f"saga local up, resident memory of its process tree (PSS): {memory['idle_mb']:.0f} MB idle, "
            f"{memory['peak_mb']:.0f} MB at peak while booking, {memory['idle_after_mb']:.0f} MB idle after "
            f"(their resident sets added up, a shared page once per process: {memory['idle_rss_sum_mb']:.0f} MB idle)",
        ]
    if "suite" in loops:
        suite = loops["suite"]
        lines += [
            "",
            f"The test suite, as ./dev test runs it: {suite['wall_seconds']:.0f} s wall; by group (summed test time)",
            *_grid(("group", "seconds"), [(group, f"{seconds:.1f}") for group, seconds in suite["groups"].items()]),
        ]
    return lines


def _cost_row(path: str, figures: dict) -> tuple:
    used = figures["ours"]["per_booking"]
    ours = figures["ours"]["usd_per_million_bookings"]["total"]
    skipping = figures["skip_own_cancel"]["usd_per_million_bookings"]["total"]
    return (
        path,
        f"{figures['local_seconds']:.2f}",
        f"{used['state_transitions']:g}",
        f"{used['lambda_invocations']:g}",
        f"{used['lambda_billed_ms']:.0f}",
        f"{used['dynamodb_read_units']:g}",
        f"{used['dynamodb_write_units']:g}",
        f"{used['sqs_requests']:g}",
        f"{ours:.2f}",
        f"{skipping:.2f}",
        f"{ours - skipping:.2f}",
    )


def _grid(header: tuple, rows: list[tuple]) -> list[str]:
    """Aligned columns: the first to the left, the figures to the right."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return [
        "  "
        + "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]


def chart(results: dict, path: Path) -> None:
    figure, (speed, cost, cold) = plt.subplots(1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [1.4, 1.2, 0.8]})
    _speed(speed, results["local"]["cells"])
    _cost(cost, results["cost"])
    _cold(cold, results["cold_start"])
    figure.suptitle(f"Booking saga benchmark ({results['date'][:10]}, {results['machine']['cpu']})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _speed(axes, cells: list[dict]) -> None:
    groups = list(dict.fromkeys((cell["scenario"], cell["concurrency"]) for cell in cells))  # in measuring order
    series = list(dict.fromkeys((cell["engine"], cell["speedups"]) for cell in cells))
    width = 0.8 / len(series)
    index = {(c["scenario"], c["concurrency"], c["engine"], c["speedups"]): c for c in cells}
    for number, (engine, speedups) in enumerate(series):
        chosen = [index[scenario, concurrency, engine, speedups] for scenario, concurrency in groups]
        positions = [group + (number - (len(series) - 1) / 2) * width for group in range(len(groups))]
        p50 = [cell["p50_ms"] for cell in chosen]
        p95 = [cell["p95_ms"] - cell["p50_ms"] for cell in chosen]
        label = f"{ENGINE_NAMES[engine]}, speedups: {LEVEL_NAMES[speedups]}"
        color = COLORS[engine, speedups]
        axes.bar(positions, p50, width, yerr=[[0] * len(p95), p95], capsize=2, label=label, color=color)
    axes.set_xticks(range(len(groups)), [f"{scenario}\n{concurrency} in flight" for scenario, concurrency in groups])
    axes.set_ylabel("latency, ms (bar p50, whisker p95)")
    axes.set_title("Local speed")
    axes.legend(fontsize="small")


def _cost(axes, cost: dict) -> None:
    paths = list(cost["paths"])
    width = 0.4
    for offset, design, hatch in ((-width / 2, "ours", ""), (width / 2, "skip_own_cancel", "//")):
        bottom = [0.0] * len(paths)
        for number, service in enumerate(SERVICES):
            values = [cost["paths"][path][design]["usd_per_million_bookings"][service] for path in paths]
            axes.bar(
                [index + offset for index in range(len(paths))],
                values,
                width,
                bottom=bottom,
                color=f"C{number}",
                hatch=hatch,
                edgecolor="white",
                label=service.replace("_", " ") if design == "ours" else None,
            )
            bottom = [total + value for total, value in zip(bottom, values, strict=True)]
    axes.set_xticks(range(len(paths)), [path.replace("_", "\n", 1) for path in paths], fontsize="small")
    axes.set_ylabel("US$ per million bookings")
    axes.set_title("AWS cost per million bookings (hatched: catch skips its own cancel)")
    axes.legend(fontsize="small")


def _cold(axes, cold: dict) -> None:
    modules = list(cold["modules"])
    imports = [cold["modules"][module]["import_ms"] for module in modules]
    axes.bar(modules, imports, color="C0", label="import of the handler module")
    axes.axhline(cold["parts_import_ms"]["boto3"], color="C3", linestyle="--", label="import boto3 alone")
    for index, module in enumerate(modules):
        axes.annotate(
            f"peak {cold['modules'][module]['peak_rss_mb']:.0f} MB",
            (index, imports[index]),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    axes.set_ylabel("ms, median of fresh interpreters")
    axes.set_title("Cold start")
    axes.legend(fontsize="small", loc="lower right")
