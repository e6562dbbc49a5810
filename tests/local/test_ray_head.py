"""The run's local Ray instance: started, then stopped as a whole, without waiting out the
grace period (a SIGTERM'd `ray start --block` would otherwise try to drain the node through a
GCS that got the same SIGTERM)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mljob.local.processes import STOP_GRACE_SECONDS
from mljob.local.ray_head import LocalRay


def test_local_ray_stops_quickly_and_leaves_nothing(tmp_path: Path) -> None:
    ray = LocalRay(tmp_path / "ray-head.log", cpus=1)
    group = ray._process.pid
    started = time.monotonic()
    ray.stop()
    stopped_in = time.monotonic() - started
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    assert stopped_in < STOP_GRACE_SECONDS, (
        f"stopping Ray took {stopped_in:.1f}s (grace period waited out?)"
    )
