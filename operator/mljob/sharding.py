"""Which operator shard owns an object: N active operators split the MLJobs (and
ScheduledMLJobs) between them, each its own share, each share with its own kopf peering so a
standby of that shard takes over when its active replica dies (docs/scaling.md).

The owner of `namespace/name` is a jump consistent hash (Lamping and Veach, "A Fast, Minimal
Memory, Consistent Hash Algorithm", 2014) of the first 8 bytes of its SHA-256: the same in every
process and every Python (never `hash()`, which is salted per process), balanced, and moving
only 1/(N+1) of the objects when N shards become N+1. A child belongs to the shard of its owner
MLJob (its `mljob.io/name` label and namespace), a ScheduledMLJob's run to the shard of its
ScheduledMLJob for the schedule's own bookkeeping, and, as an MLJob, to its own shard.

Pure: no I/O, no kopf. `configure()` sets the process's shard once, before kopf starts; the
glue's filters ask `owns()`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_SHARDS = 1024
_MULTIPLIER = 2862933555777941757  # the 64-bit LCG of the paper
_MASK = (1 << 64) - 1


class ShardError(ValueError):
    """A bad --shard/--shards pair (one line, for the command line)."""


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard (0 .. shards-1) that owns `namespace/name`."""
    if shards < 1:
        raise ShardError(f"shards must be >= 1, got {shards}")
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    key = int.from_bytes(digest[:8], "big")
    bucket, jump = -1, 0
    while jump < shards:
        bucket = jump
        key = (key * _MULTIPLIER + 1) & _MASK
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


@dataclass(frozen=True)
class Shard:
    """This process's share: shard `index` of `count` (0 of 1: everything, no sharding)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ShardError(f"--shards must be between 1 and {MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"--shard must be between 0 and {self.count - 1} (--shards {self.count}), "
                f"got {self.index}"
            )

    def owns(self, namespace: str | None, name: str | None) -> bool:
        if self.count == 1:
            return True
        if not name:
            return False
        return shard_of(namespace or "", name, self.count) == self.index

    def peering_name(self, base: str) -> str:
        """The kopf peering of this shard: its replicas elect one active among themselves only.
        The shard count is not in the name: the replicas of one shard index keep one peering
        across a change of the count."""
        return base if self.count == 1 else f"{base}-shard-{self.index}"

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


_current = Shard()


def configure(shard: Shard) -> None:
    """Set this process's shard (serve.py, before kopf starts)."""
    global _current
    _current = shard


def current() -> Shard:
    return _current


def owns(namespace: str | None, name: str | None) -> bool:
    """Whether this process's shard owns `namespace/name`."""
    return _current.owns(namespace, name)
