"""What a person sees: a live view (redrawn in place on a terminal, one line per change
otherwise) and the final summary table."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, STOPPED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "stopped",
)
RETRYING = "retrying"  # an attempt failed; the next one starts after the backoff
SPINNER = "|/-\\"
SYMBOL = {
    PENDING: ".",
    SUCCEEDED: "ok",
    FAILED: "FAIL",
    SKIPPED: "-",
    STOPPED: "stop",
    RETRYING: "..",
}


@dataclass
class StepState:
    name: str
    engine: str
    status: str = PENDING
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = field(default=None)
    attempts: int = 0  # attempts started (a retry is the next one)

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished or now) - self.started


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def summary_table(steps: list[StepState], now: float) -> str:
    rows = [("STEP", "ENGINE", "STATUS", "DURATION")]
    rows += [(s.name, s.engine, s.status, format_duration(s.elapsed(now))) for s in steps]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


class LiveView:
    def __init__(self, title: str, steps: list[StepState], out: TextIO = sys.stdout) -> None:
        self.steps, self.out, self.title = steps, out, title
        self.interactive = out.isatty()
        self._drawn_lines = 0
        self._last_status: dict[str, str] = {}
        self._tick = 0
        print(title, file=out, flush=True)

    def refresh(self) -> None:
        now = time.monotonic()
        if self.interactive:
            self._redraw(now)
        else:
            self._print_changes(now)

    def message(self, text: str) -> None:
        """Print below the live area (which is redrawn underneath afterwards)."""
        self._clear()
        print(text, file=self.out, flush=True)

    def _line(self, step: StepState, now: float) -> str:
        mark = SPINNER[self._tick % len(SPINNER)] if step.status == RUNNING else SYMBOL[step.status]
        elapsed = format_duration(step.elapsed(now))
        return f"  [{mark:^4}] {step.name:<20} {step.engine:<6} {step.status:<10} {elapsed}"

    def _redraw(self, now: float) -> None:
        self._tick += 1
        self._clear()
        lines = [self._line(s, now) for s in self.steps]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn_lines = len(lines)

    def _clear(self) -> None:
        if self.interactive and self._drawn_lines:
            self.out.write(f"\x1b[{self._drawn_lines}F\x1b[J")  # up N lines, clear below
            self._drawn_lines = 0

    def _print_changes(self, now: float) -> None:
        for step in self.steps:
            if self._last_status.get(step.name) != step.status:
                self._last_status[step.name] = step.status
                if step.status != PENDING:
                    elapsed = format_duration(step.elapsed(now)) if step.finished else ""
                    print(
                        f"step {step.name} ({step.engine}): {step.status} {elapsed}".rstrip(),
                        file=self.out,
                        flush=True,
                    )


def metrics_summary(data_dir: Path, limit: int = 3) -> str:
    """The run's result at a glance: the scalar values of the metrics files its steps wrote
    (`*metrics*.json`, the convention of the example pipeline), newest first."""
    files = sorted(data_dir.rglob("*metrics*.json"), key=lambda p: p.stat().st_mtime)[::-1]
    lines = []
    for path in files[:limit]:
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(values, dict):
            lines.append(f"{path.relative_to(data_dir)}: {_scalars(values)}")
    return "".join(f"{line}\n" for line in lines)


def _scalars(values: dict, prefix: str = "") -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, dict):
            parts.append(_scalars(value, f"{prefix}{key}."))
        elif isinstance(value, float):
            parts.append(f"{prefix}{key}={value:.4g}")
        elif isinstance(value, int | str | bool):
            parts.append(f"{prefix}{key}={value}")
    return "  ".join(p for p in parts if p)
