"""A heap census of the operator process, for the benchmark only (bench/operator_scale.py
--heap-census; docs/benchmarks.md). Off unless MLJOB_HEAP_CENSUS_DIR is set, and nothing of it
runs in a normal operator: `install_from_env` returns at once.

With MLJOB_HEAP_CENSUS_DIR=<dir> (and tracemalloc on: PYTHONTRACEMALLOC=<frames> from the
interpreter's start, else it is started here), each SIGUSR1 collects garbage, takes a
tracemalloc snapshot and writes it to `<dir>/snapshot-<n>.pickle` (n = 1, 2, ...; written under
another name first and renamed, so a reader never sees half a file). tracemalloc slows every
allocation: a census run measures memory, not speed."""

from __future__ import annotations

import gc
import itertools
import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

ENV = "MLJOB_HEAP_CENSUS_DIR"


def install_from_env() -> None:
    directory = os.environ.get(ENV)
    if not directory:
        return
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    numbers = itertools.count(1)

    def dump(signum: int, frame: FrameType | None) -> None:
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        target = Path(directory) / f"snapshot-{next(numbers)}.pickle"
        partial = target.with_suffix(".partial")
        snapshot.dump(str(partial))
        partial.rename(target)

    signal.signal(signal.SIGUSR1, dump)
