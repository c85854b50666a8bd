"""One cold start, measured in a fresh interpreter: ``python -I -B cold_start_probe.py <code dir> <module> [event]``.

Run like the local cloud's Lambda worker (isolated, the deployed code first on the path) and
without writing bytecode, since Lambda's code directory is read-only: the handler modules
compile on every cold start there too. It imports the module, then (given an event) invokes
``<module>.reserve`` once, and prints one JSON line: the import's milliseconds, the first
invocation's, and the process's peak resident memory, which is what Lambda reports as
"Max Memory Used".
"""

import importlib
import json
import resource
import sys
import time


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux, ru_maxrss would carry over the parent's peak
    from before exec (the benchmark's, hundreds of MB), so read the new image's own high-water mark."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:  # no /proc (macOS): ru_maxrss is in bytes there, and exec starts it afresh
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return kib / 1024


def main() -> None:
    code_dir, module_name = sys.argv[1], sys.argv[2]
    sys.path.insert(0, code_dir)
    started = time.perf_counter()
    module = importlib.import_module(module_name)
    report = {"import_ms": (time.perf_counter() - started) * 1000, "rss_after_import_mb": peak_rss_mb()}
    if len(sys.argv) > 3:
        started = time.perf_counter()
        module.reserve(json.loads(sys.argv[3]), None)
        report |= {"first_invoke_ms": (time.perf_counter() - started) * 1000, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
