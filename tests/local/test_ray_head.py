"""The run's local Ray instance: started, then stopped as a whole, without waiting out the
grace period (a SIGTERM'd `ray start --block` would otherwise try to drain the node through a
GCS that got the same SIGTERM)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mljob.local.ray_head import LocalRay


def test_local_ray_stops_on_sigterm_and_leaves_nothing(tmp_path: Path) -> None:
    ray = LocalRay(tmp_path / "ray-head.log", cpus=1)
    group = ray._process.pid
    assert ray.stop(), "Ray ignored SIGTERM for the whole grace period (draining the node?)"
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
