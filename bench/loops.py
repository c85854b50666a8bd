"""The loops people wait on: the test suite by group, the demo warm, and `saga local up`'s memory.

Each runs as a person would run it, in a subprocess of this interpreter: ``python -m pytest``, ``python -m saga
demo``, ``python -m saga local up``. Memory is what the local cloud's whole process tree (the server, its DynamoDB
process and its Lambda workers) holds resident, read from /proc: idle after start, its peak while bookings run, and
idle again. Forked processes share their parent's pages until one writes to them, so each process's share of a page
is counted (PSS), which adds up to the tree's memory; their resident sets (RSS) added up count a shared page once
per process, and are reported beside it.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from booking_saga.services import reference_trip
from saga.bookings import start_booking, wait_for
from saga.deployment import find_deployment

ROOT = Path(__file__).resolve().parent.parent
PYTEST = (sys.executable, "-m", "pytest", "-n", "auto")  # as `./dev test` runs it
LOCAL_UP = (sys.executable, "-m", "saga", "local", "up")
KEEP_WARM_SECONDS = 3  # `saga local up --keep-warm`: how long its workers outlive the bookings
_DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?:call|setup|teardown)\s+(?P<test>\S+)")


def suite_seconds(progress: Callable[[str], None]) -> dict:
    """The whole suite as `./dev test` runs it: its wall time, and the time of each group of tests (a directory,
    or a module of tests/integration), summed over setup, call and teardown."""
    progress("suite: the whole test suite, as ./dev test runs it (minutes)")
    started = time.monotonic()
    result = subprocess.run(
        [*PYTEST, "-q", "-p", "no:logging", "--show-capture=no", "--durations=0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"the suite failed:\n{result.stdout[-3000:]}")
    groups: dict[str, float] = defaultdict(float)
    for line in result.stdout.splitlines():
        found = _DURATION.match(line)
        if found:
            groups[_group(found["test"])] += float(found["seconds"])
    return {"wall_seconds": wall, "groups": dict(sorted(groups.items(), key=lambda item: -item[1]))}


def _group(test: str) -> str:
    path = test.partition("::")[0]
    parts = Path(path).parts
    return path if parts[:2] == ("tests", "integration") else str(Path(*parts[:2]))


def demo_seconds(runs: int, progress: Callable[[str], None]) -> dict:
    """`saga demo` warm: one run to fill the caches, then ``runs`` timed ones."""
    progress(f"demo: one run to warm up, then {runs} timed")
    seconds = [_timed([sys.executable, "-m", "saga", "demo", "--json"]) for _ in range(runs + 1)][1:]
    return {"runs": seconds, "median_seconds": statistics.median(seconds)}


def _timed(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.monotonic() - started


def local_up_memory(bookings: int, progress: Callable[[str], None]) -> dict:
    """`saga local up`'s resident memory, in MB: idle once up, its peak while ``bookings`` bookings run four at a
    time, and idle again once its Lambda workers were left idle for ``KEEP_WARM_SECONDS``."""
    progress(f"memory: saga local up, idle, then {bookings} bookings, then idle again")
    server = subprocess.Popen(
        [*LOCAL_UP, "--json", "--port", "0", "--wait-scale", "0.01", "--keep-warm", str(KEEP_WARM_SECONDS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None  # a pipe
    try:
        endpoint = json.loads(server.stdout.readline())["endpoint_url"]
        time.sleep(2)
        idle, idle_rss = _tree_memory_mb(server.pid)
        peak = _Peak(server.pid)
        deployment = find_deployment(endpoint_url=endpoint)
        ids = [f"memory-{n:04d}" for n in range(bookings)]
        for start in range(0, bookings, 4):
            batch = ids[start : start + 4]
            for booking_id in batch:
                start_booking(deployment, reference_trip(booking_id))
            for booking_id in batch:
                wait_for(deployment, booking_id, timeout=60)
        peak.stop()
        time.sleep(KEEP_WARM_SECONDS * 2)  # the workers the bookings started are stopped again
        idle_after, _ = _tree_memory_mb(server.pid)
        return {"idle_mb": idle, "peak_mb": peak.value, "idle_after_mb": idle_after, "idle_rss_sum_mb": idle_rss}
    finally:
        server.terminate()
        server.wait(timeout=30)


class _Peak:
    """The most memory a process tree held (PSS), sampled every 50 ms until stopped."""

    def __init__(self, pid: int):
        self.value = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def _sample(self, pid: int) -> None:
        while not self._stop.wait(0.05):
            self.value = max(self.value, _tree_memory_mb(pid)[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _tree_memory_mb(pid: int) -> tuple[float, float]:
    """The resident memory of a process and all its descendants (Linux /proc): their PSS and their RSS, summed."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[parent].append(int(entry))
    pss = rss = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            lines = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
        except OSError:  # it ended meanwhile
            continue
        sizes = {name: int(value.split()[0]) for name, _, value in (line.partition(":") for line in lines[1:])}
        pss, rss = pss + sizes["Pss"], rss + sizes["Rss"]
    return pss / 1024, rss / 1024
