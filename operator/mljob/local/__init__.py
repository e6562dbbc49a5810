"""Local mode: run an MLJob's steps on this machine (local PySpark, one local Ray instance).

`plan` holds the pure parts (order, environment, path mapping, commands); `processes`,
`ray_head`, `view` and `runner` do the I/O.
"""

from mljob.local.errors import LocalRunError

__all__ = ["LocalRunError"]
