"""Step fingerprints and the cache of succeeded steps (issue 13). Pure: no I/O, no clock.

A step's fingerprint says "this step, run again, would compute the same thing": a hash of
- its own resolved spec: the whole engine block (`spark`, `ray` or `serve`: application file,
  entrypoint, arguments, conf, env, runtime env, resources, template), the image it resolves to
  (the step's own or spec.image), the pipeline's `env` and `dataPath`, and for a Ray step on the
  shared cluster, `spec.rayCluster`. Resources count, on purpose: a different number of Ray
  Train workers or Spark partitions may change the result, and a needless re-run is cheap next
  to a wrong hit;
- the fingerprints of the steps it depends on (so a change upstream changes every step below);
- the step's `cacheKey`, the user's word for what the spec cannot see (a data version, a date).

Left out, because they steer how a step is run, not what it computes: `retries`,
`backoffSeconds`, `maxBackoffSeconds`, `startDeadlineSeconds`, `activeDeadlineSeconds`,
`cache`, `outputs`, the name of the dependencies (their fingerprints stand for them), labels,
annotations and the run-control fields of the spec.

A hit also needs the same inputs: the record of a step keeps, per dependency, the run whose
outputs it read (`inputs`). A dependency that ran again (cache off, or a miss) has new outputs,
so a step below it misses even with the same fingerprint: fresh data upstream is never hidden.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mljob.status import CacheRecord
from mljob.validation import dependencies

Obj = dict[str, Any]

MAX_CACHE_RECORDS = 100  # status.cache / cache.json keep the newest records, bounded
ENGINE_KEYS = ("spark", "ray", "serve")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def own_spec(spec: Obj, step: Obj) -> Obj:
    """The part of a step's resolved spec that defines what it computes (module doc)."""
    engine = next((k for k in ENGINE_KEYS if k in step), "")
    block = step.get(engine) or {}
    own: Obj = {
        "engine": engine,
        # The image as resolved: the same image said on the step or on the spec is one image.
        "block": {k: v for k, v in block.items() if k != "image"},
        "image": block.get("image") or spec.get("image"),
        "env": spec.get("env") or [],
        "dataPath": spec.get("dataPath") or "",
        "cacheKey": step.get("cacheKey"),
    }
    if engine == "ray" and spec.get("rayCluster"):
        own["rayCluster"] = spec["rayCluster"]
    return own


def fingerprints(spec: Obj) -> dict[str, str]:
    """Every step's fingerprint, by step name. The spec must be valid (no cycle)."""
    steps = {s["name"]: s for s in spec["steps"]}
    deps = dependencies(spec["steps"])
    done: dict[str, str] = {}

    def visit(name: str) -> str:
        if name not in done:
            upstream = {d: visit(d) for d in deps[name]}
            done[name] = _digest({"own": own_spec(spec, steps[name]), "deps": upstream})
        return done[name]

    for name in steps:
        visit(name)
    return done


def lookup(
    records: Sequence[CacheRecord], step: str, fingerprint: str, inputs: Mapping[str, int]
) -> CacheRecord | None:
    """The newest record of `step` with this fingerprint and these inputs, if any."""
    for record in reversed(records):
        same = record["step"] == step and record["fingerprint"] == fingerprint
        if same and dict(record.get("inputs") or {}) == dict(inputs):
            return record
    return None


def remember(records: Sequence[CacheRecord], record: CacheRecord) -> list[CacheRecord]:
    """`records` with `record` added last; an older record of the same step and fingerprint goes
    (the newest outputs win), and only the newest MAX_CACHE_RECORDS stay."""
    kept = [
        r
        for r in records
        if (r["step"], r["fingerprint"]) != (record["step"], record["fingerprint"])
    ]
    return [*kept, record][-MAX_CACHE_RECORDS:]


def input_runs(
    deps: Sequence[str], cached_from: Mapping[str, int | None], run: int
) -> dict[str, int]:
    """Per dependency, the run whose outputs a step reads: the run a cached dependency came
    from, else the current run."""
    return {d: cached_from.get(d) or run for d in deps}
