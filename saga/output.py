"""Output for people: colour on a terminal (plain text in pipes and logs), aligned tables, progress."""

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from booking_saga.services import SERVICES
from saga.bookings import Outcome
from saga.deployment import Deployment

_COLOURS = {"ok": "32", "fail": "31", "undo": "33", "dim": "2", "bold": "1"}
VERDICT_STYLES = {"confirmed": "ok", "compensated": "undo", "running": "dim"}  # anything else: "fail"


class Printer:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty()

    def paint(self, text: str, style: str) -> str:
        return f"\033[{_COLOURS[style]}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    @contextmanager
    def progress(self, what: str) -> Iterator[None]:
        """Slow phases (synth, deploy, waiting) say what they are doing and how long it took."""
        print(f"{what} ...", end="", file=self.stream, flush=True)
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.line(" failed")
            raise
        self.line(f" done in {time.monotonic() - started:.1f} s")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]], styles: Sequence[str | None] = ()):
        """Columns padded to their widest cell; ``styles`` paints whole rows."""
        cells = [[str(cell) for cell in row] for row in rows]
        widths = [max(len(row[i]) for row in [list(headers), *cells]) for i in range(len(headers))]
        self.line(self.paint("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), "bold"))
        for row, style in zip(cells, [*styles, *[None] * len(cells)], strict=False):
            text = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            self.line(self.paint(text, style) if style else text)

    def verdict(self, verdict: str) -> str:
        return self.paint(verdict.upper(), VERDICT_STYLES.get(verdict, "fail"))

    def outcome(self, outcome: Outcome) -> None:
        """The path step by step: the failed step and the compensations marked."""
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
            self.line(f"  {self.paint(mark, style)} {step.name:<22}{self.paint(seconds, 'dim')}{note}{retries}")
        self.line(f"  => {self.verdict(outcome.verdict)}")

    def tables(self, deployment: Deployment, title: str) -> None:
        """Each service's inventory and bookings."""
        self.line(self.paint(title, "bold"))
        for service, (stock, bookings) in table_contents(deployment).items():
            if stock:
                levels = ", ".join(f"{item['resource_id']} {item['available']}/{item['capacity']}" for item in stock)
                self.line(f"  {service:<8} available: {levels}")
            for item in bookings:
                held = f"{item.get('quantity', '')} {item.get('resource_id', '')}".strip()
                charge = f"{item.get('amount', '')} {item.get('currency', '')}".strip()
                what = held or charge or "nothing held"
                self.line(f"  {service:<8} {item['booking_id']:<22} {item['status']:<10} {what}")
            if not bookings:
                self.line(f"  {service:<8} (no bookings)")


def table_contents(deployment: Deployment) -> dict[str, tuple[list[dict], list[dict]]]:
    """Per service: inventory items by id, booking records by booking id (consistent reads)."""
    return {service.name: deployment.ledger(service.name).contents() for service in SERVICES}
