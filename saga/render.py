"""What `saga` shows: text for people (colour on a terminal, plain in pipes and logs) or JSON for scripts.

``Output`` is the environment the program writes to; the tests replace its streams. It owns the one
decision between JSON and text: a command hands it a result's JSON form and the lines that render it.
The renderers below turn a model into lines and never call AWS.
"""

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from booking_saga.executions import (
    COMPENSATED,
    CONFIRMED,
    HISTORY_EXPIRED,
    PARKED,
    REFUSED,
    RELEASED,
    REPLAYED,
    RUNNING,
    UNSETTLED,
    Outcome,
)
from saga.audit import Audit
from saga.bookings import Summary
from saga.catalog import Loaded
from saga.chaos import ChaosReport
from saga.recovery import RECONCILED, Replay

_COLOURS = {"ok": "32", "fail": "31", "undo": "33", "dim": "2", "bold": "1"}
VERDICT_STYLES = {
    CONFIRMED: "ok",
    COMPENSATED: "undo",
    REFUSED: "undo",
    RELEASED: "undo",
    REPLAYED: "undo",
    RUNNING: "dim",
    HISTORY_EXPIRED: "dim",
    PARKED: "fail",
    UNSETTLED: "fail",
}


class Output:
    """Where results, notes and progress go. With ``json``, stdout carries only the JSON result and every line
    for people goes to stderr."""

    def __init__(self, json_mode: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None):
        self.json = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._people = self.stderr if json_mode else self.stdout
        self.colour = self._people.isatty()

    def paint(self, text: str, style: str) -> str:
        return f"\033[{_COLOURS[style]}m{text}\033[0m" if self.colour else text

    def verdict(self, verdict: str) -> str:
        return self.paint(verdict.upper(), VERDICT_STYLES[verdict])

    def result(self, document: object, lines: Iterable[str], *, one_line: bool = False) -> None:
        """A command's result: ``document`` as JSON on stdout for scripts (``one_line`` for a reader that reads a
        line, as of a server that goes on running), else ``lines`` for people."""
        if self.json:
            print(json.dumps(document, indent=None if one_line else 2, default=str), file=self.stdout, flush=True)
        else:
            for line in lines:
                print(line, file=self.stdout, flush=True)

    def note(self, text: str = "") -> None:
        """A line for people, never part of the JSON result."""
        print(text, file=self._people, flush=True)

    @contextmanager
    def progress(self, what: str) -> Iterator[None]:
        """Slow phases (synth, deploy, waiting) say what they are doing and how long it took."""
        print(f"{what} ...", end="", file=self._people, flush=True)
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.note(" failed")
            raise
        self.note(f" done in {time.monotonic() - started:.1f} s")

    def error(self, message: str) -> None:
        print(f"saga: error: {message}", file=self.stderr, flush=True)


def table(out: Output, headers: Sequence[str], rows: Sequence[Sequence[object]], styles: Sequence[str | None] = ()):
    """Columns padded to their widest cell; ``styles`` paints whole rows."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [list(headers), *cells]) for i in range(len(headers))]
    yield out.paint("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), "bold")
    for row, style in zip(cells, [*styles, *[None] * len(cells)], strict=False):
        text = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        yield out.paint(text, style) if style else text


def path(out: Output, outcome: Outcome) -> Iterator[str]:
    """The path step by step, the failed step and the compensations marked, then the verdict."""
    failed, undone = outcome.failed_step, outcome.compensations
    for step in outcome.path:
        seconds = f"{step.seconds:6.2f} s" if step.seconds is not None else " " * 8
        retries = f"  ({step.attempts} attempts)" if step.attempts > 1 else ""
        if step is failed:
            mark, style, note = "✗", "fail", f"  {step.error}: {step.message}"
        elif step in undone:
            mark, style, note = "↶", "undo", "  compensation"
        elif step.state_type == "Fail" or step.failed:
            mark, style, note = "■", "fail", f"  {step.error}"
        else:
            mark, style, note = "✓", "ok", ""
        yield f"  {out.paint(mark, style)} {step.name:<22}{out.paint(seconds, 'dim')}{note}{retries}"
    yield f"  => {out.verdict(outcome.verdict)}"


def status(out: Output, outcome: Outcome) -> Iterator[str]:
    """How a booking stands, in a few lines."""
    yield f"{outcome.booking_id}: {out.verdict(outcome.verdict)}"
    failed = outcome.failed_step
    if failed is not None:
        yield f"  failed at {failed.name}: {failed.error}: {failed.message}"
    if outcome.compensations:
        yield f"  compensated by {', '.join(step.name for step in outcome.compensations)}"
    if outcome.verdict in (PARKED, UNSETTLED, HISTORY_EXPIRED):
        yield f"  {outcome.to_json()['cause']}"
    if outcome.resolution:
        by = {"reconciler": "the reconciler", "replay": "saga replay"}[outcome.resolution["by"]]
        yield f"  {outcome.resolution['outcome']} by {by} at {outcome.resolution['at']}"


def status_json(outcome: Outcome) -> dict:
    """`saga status --json`: the outcome without its path (`saga history` has it)."""
    return {key: value for key, value in outcome.to_json().items() if key != "path"}


def history(out: Output, outcome: Outcome) -> Iterator[str]:
    """Each state: duration, attempts, error and cause."""
    yield f"{outcome.booking_id}: {out.verdict(outcome.verdict)}"
    rows = [
        (
            step.name,
            step.state_type,
            f"{step.seconds:.2f} s" if step.seconds is not None else "running",
            step.attempts or "",
            step.error or "",
            (step.message or "")[:100],
        )
        for step in outcome.path
    ]
    styles = ["fail" if step.failed else None for step in outcome.path]
    yield from table(out, ["state", "type", "duration", "attempts", "error", "cause"], rows, styles)


def summaries(out: Output, listed: list[Summary]) -> Iterator[str]:
    if not listed:
        yield "no bookings yet"
        return
    rows = [(s.booking_id, s.verdict, s.error or "", s.started.strftime("%Y-%m-%d %H:%M:%S"), _took(s)) for s in listed]
    styles = [None if s.verdict == CONFIRMED else VERDICT_STYLES[s.verdict] for s in listed]
    yield from table(out, ["booking", "outcome", "error", "started", "took"], rows, styles)


def _took(summary: Summary) -> str:
    return f"{(summary.stopped - summary.started).total_seconds():.1f} s" if summary.stopped else ""


def chaos(out: Output, report: ChaosReport) -> Iterator[str]:
    yield from path(out, report.outcome)
    yield ""
    for check in report.checks:
        mark = out.paint("✓", "ok") if check.passed else out.paint("✗", "fail")
        yield f"  {mark} {check.name}: {check.detail}"
    verdict = "PASSED: nothing stays reserved or charged" if report.passed else "FAILED"
    yield f"Chaos test {out.paint(verdict, 'ok' if report.passed else 'fail')}"


def replays(out: Output, done: list[Replay]) -> Iterator[str]:
    if not done:
        yield "nothing to replay: no booking is parked and the reconciler has finished every end it was given"
    for replay in done:
        released = f"released by {', '.join(replay.released)}" if replay.released else "nothing was still held"
        if replay.error is not None:
            yield f"{out.paint('✗', 'fail')} {replay.booking_id}: still parked, {replay.error}"
        elif replay.parked:
            yield f"{out.paint('✗', 'fail')} {replay.booking_id}: the reconciler could not finish it and parked it"
        elif replay.how == RECONCILED:
            yield f"{out.paint('✓', 'ok')} {replay.booking_id}: reconciled, {released}"
        else:
            yield f"{out.paint('✓', 'ok')} {replay.booking_id}: compensation finished, {released}"


def audit(out: Output, report: Audit) -> Iterator[str]:
    yield from table(
        out,
        ["service", "resource", "capacity", "held", "available", "balanced"],
        [
            (s.service, s.resource_id, s.capacity, s.held, s.available, "yes" if s.balanced else "NO")
            for s in report.stocks
        ],
        ["fail" if not s.balanced else None for s in report.stocks],
    )
    yield (
        f"{report.reserved} reservations held, each by a running or confirmed execution unless listed below; "
        f"{report.confirmed} confirmed bookings checked"
    )
    if report.parked:
        yield f"{len(report.parked)} held by bookings parked for a person (saga replay finishes them)"
    if report.unverified:
        yield f"{len(report.unverified)} held by executions Step Functions no longer keeps (not checked)"
    for drift in report.drift:
        yield out.paint(f"  ✗ {drift.check}: {drift.service} {drift.subject}: {drift.detail}", "fail")
    verdict = "CLEAN: every promise holds" if report.clean else f"DRIFT: {len(report.drift)} broken"
    yield f"Audit {out.paint(verdict, 'ok' if report.clean else 'fail')}"


def loaded(out: Output, done: Loaded, catalog: str, stack: str) -> Iterator[str]:
    yield f"loaded {len(done.changes)} inventory items from {catalog} into {stack}: {done.summary()}"


def tables(out: Output, contents: dict[str, tuple[list[dict], list[dict]]], title: str) -> Iterator[str]:
    """Each service's inventory and bookings, as ``Ledger.contents`` read them."""
    yield out.paint(title, "bold")
    for service, (stock, bookings) in contents.items():
        if stock:
            levels = ", ".join(f"{item['resource_id']} {item['available']}/{item['capacity']}" for item in stock)
            yield f"  {service:<8} available: {levels}"
        for item in bookings:
            held = f"{item.get('quantity', '')} {item.get('resource_id', '')}".strip()
            charge = f"{item.get('amount', '')} {item.get('currency', '')}".strip()
            yield f"  {service:<8} {item['booking_id']:<22} {item['status']:<10} {held or charge or 'nothing held'}"
        if not bookings:
            yield f"  {service:<8} (no bookings)"


def local_cloud(out: Output, endpoint_url: str, api_url: str, outputs: dict[str, str]) -> Iterator[str]:
    yield ""
    yield out.paint(f"The local cloud is up at {endpoint_url}", "bold")
    yield from table(out, ["output", "value"], sorted(outputs.items()))
    yield f"The booking API is served at {api_url} (POST bookings, GET bookings/<id>)"
    yield ""
    yield f"  export AWS_ENDPOINT_URL={endpoint_url}   # then: saga book --wait [--api], saga list, aws ..."
    yield "  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1   # for boto3 and the CLI"
    yield "Press Ctrl-C to stop."
