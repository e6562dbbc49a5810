"""The vendored upstream CRDs are the pinned releases, unmodified, and complete."""

from __future__ import annotations

import hashlib
import re

from mljob import third_party


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_vendored_crd_is_the_upstream_blob_named_in_the_readme():
    readme = (third_party.FOLDER / "README.md").read_text()
    blobs = dict(re.findall(r"^\| `([\w./-]+\.yaml)` \| `([0-9a-f]{40})` \|$", readme, re.M))
    paths = third_party.crd_paths()
    assert len(paths) == 6
    for path in paths:
        relative = f"{path.parent.name}/{path.name}"
        assert git_blob_id(path.read_bytes()) == blobs[relative], relative


def test_both_controllers_find_every_crd_they_need_to_start():
    kinds = {third_party.load_crd(p.name)["spec"]["names"]["kind"] for p in third_party.crd_paths()}
    assert {"RayJob", "RayCluster", "RayService"} <= kinds  # KubeRay exits without RayService
    assert {"SparkApplication", "ScheduledSparkApplication", "SparkConnect"} <= kinds
