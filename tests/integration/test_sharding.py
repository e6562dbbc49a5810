"""Two shards on the real control plane (`mljob operator --shard i --shards 2`, docs/scaling.md):
each MLJob is acted on by exactly one shard, and a shard whose active replica is killed keeps
its MLJobs, through the standby of its own peering; the other shard never touches them."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from mljob.sharding import shard_of

from .k8s import MLJOB, RAYJOB, SPARK, create, get, wait_for
from .test_faults import own_namespace, pipeline, start_operator  # noqa: F401
from .test_pipeline import children, finish_rayjob, finish_spark, mljob_events, wait_phase

pytestmark = pytest.mark.integration

PER_SHARD = 3
LIFETIME = {"MLJOB_PEERING_LIFETIME_SECONDS": "5"}


def shard_peering(api_client, namespace: str, shard: int) -> None:
    body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering"}
    body["metadata"] = {"name": f"mljob-shard-{shard}"}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", body
    )


def peers(api_client, namespace: str, peering: str) -> dict:
    body = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", peering
    )
    return body.get("status") or {}


def names_by_shard(namespace: str) -> dict[int, list[str]]:
    """PER_SHARD MLJob names for each of the two shards (the hash decides, as in the operator)."""
    owned: dict[int, list[str]] = {0: [], 1: []}
    for i in range(100):
        name = f"job-{i}"
        mine = owned[shard_of(namespace, name, 2)]
        if len(mine) < PER_SHARD:
            mine.append(name)
    assert all(len(v) == PER_SHARD for v in owned.values())
    return owned


def reporters(api_client, namespace: str, name: str) -> set[str]:
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=MLJob"
    )
    return {e.reporting_instance for e in events.items}


def acted_on(log: str, namespace: str, name: str) -> bool:
    """Whether an operator's log shows any action on the MLJob (every such line names it)."""
    return f"{namespace}/{name}:" in log


def test_two_shards_never_share_an_mljob_and_a_killed_shard_fails_over(
    api_client,
    own_namespace,  # noqa: F811
    start_operator,  # noqa: F811
):
    ns = own_namespace
    for shard in (0, 1):
        shard_peering(api_client, ns, shard)

    def operator(shard: int, priority: int, host: str):
        args = ("--peering=mljob", f"--priority={priority}", f"--shard={shard}", "--shards=2")
        return start_operator(*args, env={**LIFETIME, "HOSTNAME": host})

    active0 = operator(0, 200, "shard0-active")
    standby0 = operator(0, 100, "shard0-standby")
    only1 = operator(1, 100, "shard1")

    def priorities(shard: int) -> list[int]:
        keep_alives = peers(api_client, ns, f"mljob-shard-{shard}").values()
        return sorted(p.get("priority") for p in keep_alives)

    wait_for(
        lambda: priorities(0) == [100, 200] and priorities(1) == [100],
        "each shard's keep-alives in its own peering",
    )
    owned = names_by_shard(ns)
    for name in owned[0] + owned[1]:
        create(api_client, MLJOB, ns, pipeline(name))
    for name in owned[0] + owned[1]:
        wait_phase(api_client, ns, name, "Running")
        wait_for(lambda n=name: reporters(api_client, ns, n), f"the Events of {name}")

    host = {0: "shard0-active", 1: "shard1"}
    for shard, names in owned.items():
        for name in names:
            assert reporters(api_client, ns, name) == {host[shard]}, name
            meta = get(api_client, MLJOB, ns, name)["metadata"]
            assert not meta.get("finalizers"), "nothing of kopf's on an MLJob"
            assert not [a for a in meta.get("annotations") or {} if "kopf" in a], meta
    logs = {0: active0.log_tail(5000), 1: only1.log_tail(5000)}
    for shard, names in owned.items():
        for name in names:
            assert f"{ns}/{name}: created SparkApplication {name}-prepare-r1" in logs[shard]
            assert not acted_on(logs[1 - shard], ns, name), f"shard {1 - shard} acted on {name}"
    assert "created" not in standby0.log_tail(5000), "the standby of shard 0 must not act"

    active0.kill()  # no goodbye: shard 0's standby takes over when the keep-alive expires
    killed = time.monotonic()
    for name in owned[0] + owned[1]:
        finish_spark(api_client, ns, f"{name}-prepare-r1")
    for name in owned[0] + owned[1]:
        job = f"{name}-train-r1"
        wait_for(
            lambda j=job: j in [x["metadata"]["name"] for x in children(api_client, RAYJOB, ns)],
            f"RayJob {job}",
        )
        finish_rayjob(api_client, ns, job)
    for name in owned[0] + owned[1]:
        wait_phase(api_client, ns, name, "Succeeded")
    print(f"shard 0 failed over and finished its pipelines in {time.monotonic() - killed:.1f} s")

    logs = {0: standby0.log_tail(5000), 1: only1.log_tail(5000)}
    assert "Resuming operations" in logs[0]
    for shard, names in owned.items():
        for name in names:
            assert f"{ns}/{name}: created RayJob {name}-train-r1" in logs[shard], name
            assert not acted_on(logs[1 - shard], ns, name), f"shard {1 - shard} acted on {name}"
            # kopf posts Events from a queue, after the status write: wait for them
            wait_for(
                lambda n=name: "StepSucceeded" in mljob_events(api_client, ns, n),
                f"{name}'s StepSucceeded Event",
            )
    wait_for(
        lambda: reporters(api_client, ns, owned[0][0]) == {"shard0-active", "shard0-standby"},
        "shard 0's Events from its active replica, then its standby",
    )
    for name in owned[1]:
        assert reporters(api_client, ns, name) == {"shard1"}, name
    assert len(children(api_client, SPARK, ns)) == len(children(api_client, RAYJOB, ns)) == 6
