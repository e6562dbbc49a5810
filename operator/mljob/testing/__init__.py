"""The test harness, shipped in the package because `mljob dev-cluster` uses it: a real control
plane (its certificates need `cryptography`, the `dev-cluster` extra; its binaries need Go once),
the operator as a process, and the corpora of bad MLJobs and bad files (no extra dependencies)."""
