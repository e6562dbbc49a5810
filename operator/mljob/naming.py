"""Deterministic child names.

A step's child is `<mljob>-<step>-r<run>`, plus `-a<attempt>` from the second attempt on; the
shared RayCluster of a run is `<mljob>-r<run>-ray`. Step children always end in `-r<N>` or
`-a<N>` and the cluster in `-ray`, so they never collide (KubeRay derives `<name>-head-svc`
Services from both). A serve step's RayService is the exception: it outlives its run and is
updated in place by later runs, so its name is stable, `<mljob>-<step>` for every run and
attempt (validation keeps serve step names from ending like `-r<N>`, `-a<N>` or `-ray`).

A name that is not a DNS-1035 label or is over the kind's limit keeps a
readable prefix and gains an 8-character hash of the full name, so the same inputs always give
the same name and different inputs (practically) never share one.
"""

from __future__ import annotations

import hashlib
import re

from mljob import constants as c

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HASH_LEN = 8


def is_dns1035_label(name: str, limit: int = 63) -> bool:
    return len(name) <= limit and bool(_DNS1035.match(name))


def step_child_name(mljob_name: str, step_name: str, run: int, attempt: int, kind: str) -> str:
    if kind == c.RAY_SERVICE_KIND:
        return _fit(f"{mljob_name}-{step_name}", "", c.NAME_LIMIT_OF_KIND[kind])
    suffix = f"-r{run}" + (f"-a{attempt}" if attempt > 1 else "")
    return _fit(f"{mljob_name}-{step_name}", suffix, c.NAME_LIMIT_OF_KIND[kind])


def ray_cluster_name(mljob_name: str, run: int) -> str:
    return _fit(mljob_name, f"-r{run}-ray", c.RAY_CLUSTER_NAME_MAX)


def _fit(base: str, suffix: str, limit: int) -> str:
    full = base + suffix
    if is_dns1035_label(full, limit):
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LEN]
    room = limit - len(suffix) - _HASH_LEN - 1
    prefix = _sanitize(base)[:room].rstrip("-")
    return f"{prefix}-{digest}{suffix}"


def _sanitize(text: str) -> str:
    """Lower-case, map anything outside [a-z0-9-] to '-', and make it start with a letter."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", text.lower())
    return cleaned if cleaned[:1].isalpha() else "m" + cleaned
