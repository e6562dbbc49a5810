"""The shard that owns an MLJob (mljob.sharding): stable across processes, balanced, moving as
little as possible when the shard count grows, and exactly one owner per object."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mljob.cli import main
from mljob.sharding import MAX_SHARDS, Shard, ShardError, shard_of

NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=63)


def test_pinned_assignments():
    # A change of the hash moves MLJobs between running shards on an operator upgrade (a
    # rolling update would have two shards act on one MLJob meanwhile): never change it lightly.
    assert shard_of("team-a", "churn", 2) == 0
    assert shard_of("team-a", "churn", 4) == 2
    assert shard_of("team-a", "a", 4) == 1
    assert shard_of("team-a", "churn", 1) == 0


def test_the_same_in_another_process():
    """Never Python's hash(), which is salted per process (PYTHONHASHSEED)."""
    keys = [("team-a", f"job-{i}") for i in range(50)]
    here = [shard_of(ns, name, 7) for ns, name in keys]
    code = f"from mljob.sharding import shard_of;print([shard_of(ns, n, 7) for ns, n in {keys!r}])"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert out.strip() == str(here)


@given(namespace=NAMES, name=NAMES, shards=st.integers(1, 64))
def test_exactly_one_shard_owns_each_object(namespace, name, shards):
    owners = [i for i in range(shards) if Shard(i, shards).owns(namespace, name)]
    assert owners == [shard_of(namespace, name, shards)]


@given(namespace=NAMES, name=NAMES, shards=st.integers(1, 64))
def test_growing_by_one_moves_objects_only_to_the_new_shard(namespace, name, shards):
    before, after = shard_of(namespace, name, shards), shard_of(namespace, name, shards + 1)
    assert after in (before, shards)


@pytest.mark.parametrize("shards", [2, 3, 5, 8])
def test_balanced(shards):
    counts = [0] * shards
    total = 20_000
    for i in range(total):
        counts[shard_of(f"team-{i % 7}", f"pipeline-{i}", shards)] += 1
    expected = total / shards
    # 5 standard deviations of a binomial share: a fair hash stays inside, always.
    slack = 5 * (total * (1 / shards) * (1 - 1 / shards)) ** 0.5
    assert all(abs(n - expected) < slack for n in counts), counts


def test_growing_moves_about_one_share():
    total = 10_000
    moved = sum(shard_of("ns", f"j{i}", 4) != shard_of("ns", f"j{i}", 5) for i in range(total))
    assert 0.15 * total < moved < 0.25 * total  # 1/5 of them: the new shard's share


def test_one_shard_owns_everything_and_keeps_its_peering_name():
    shard = Shard()
    assert shard.owns("any", "thing") and shard.owns(None, None)
    assert shard.peering_name("mljob") == "mljob"
    assert Shard(1, 3).peering_name("mljob") == "mljob-shard-1"
    assert not Shard(0, 2).owns("ns", None)  # a child without an owner label: nobody's


@pytest.mark.parametrize(
    ("index", "count", "message"),
    [
        (2, 2, "--shard must be between 0 and 1 (--shards 2), got 2"),
        (-1, 2, "--shard must be between 0 and 1 (--shards 2), got -1"),
        (0, 0, f"--shards must be between 1 and {MAX_SHARDS}, got 0"),
    ],
)
def test_bad_shards_are_one_line(index, count, message):
    with pytest.raises(ShardError) as error:
        Shard(index, count)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--shard", "3", "--shards", "2"], {}, "--shard must be between 0 and 1 (--shards 2)"),
        ([], {"MLJOB_SHARDS": "two"}, "$MLJOB_SHARDS: must be an integer, got 'two'"),
        ([], {"MLJOB_SHARD": "1"}, "--shard must be between 0 and 0 (--shards 1), got 1"),
    ],
)
def test_the_command_line_says_what_is_wrong(argv, env, message, monkeypatch, capsys):
    for variable in ("MLJOB_SHARD", "MLJOB_SHARDS"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert main(["operator", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
