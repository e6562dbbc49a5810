"""What GitOps tools make of MLJobs the operator really wrote: kstatus (cli-utils, as Flux, kpt
and Helm 4's --wait compute it) and the Argo CD health script in gopher-lua (the gitops-verdict
helper), on objects read back from the real API server in each state. The table they produce is
the one in docs/gitops.md.

The test runs its own operator on a namespace the shared operator does not serve, so "just
created" is read while no operator runs, and "spec changed, not yet observed" after stopping it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from mljob.testing.gitops import verdicts
from mljob.testing.operator_process import OperatorProcess

from .k8s import MLJOB, SPARK, create, get, patch_status, wait_for
from .test_pipeline import finish_spark, mljob, ray, spark, wait_phase

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "docs" / "argocd" / "mljob.io" / "MLJob" / "health.lua"
DOC = REPO / "docs" / "gitops.md"
BEGIN = "<!-- verdicts: begin (tests/integration/test_gitops_verdicts.py writes this table) -->"
END = "<!-- verdicts: end -->"

# state -> (kstatus, Argo CD health): what each tool must say.
EXPECTED = {
    "just created, no operator yet": ("InProgress", "Progressing"),
    "Running": ("InProgress", "Progressing"),
    "Suspended (spec.suspend)": ("InProgress", "Suspended"),
    "Failed": ("Failed", "Degraded"),
    "Succeeded": ("Current", "Healthy"),
    "spec changed, not yet observed": ("InProgress", "Progressing"),
}


@pytest.fixture
def own_namespace(api_client) -> Iterator[str]:
    name = f"g-{uuid.uuid4().hex[:10]}"  # not t-*: the shared operator never touches it
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(api_client).delete_namespace(name)


def patch_spec(api_client, namespace: str, name: str, spec: dict) -> dict:
    return client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], name, {"spec": spec}
    )


def spark_app(api_client, namespace: str, job: str) -> str:
    """The name of the SparkApplication the operator created for `job`'s step prepare."""

    def found() -> str | None:
        items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
            *SPARK[:2], namespace, SPARK[2], label_selector=f"mljob.io/name={job}"
        )["items"]
        return items[0]["metadata"]["name"] if items else None

    return wait_for(found, f"the SparkApplication of {job}")


def spark_running(api_client, namespace: str, job: str) -> None:
    app = spark_app(api_client, namespace, job)
    running = {"applicationState": {"state": "RUNNING"}, "driverInfo": {}}
    patch_status(api_client, SPARK, namespace, app, running)

    def step_running() -> bool:
        steps = (get(api_client, MLJOB, namespace, job).get("status") or {}).get("steps") or []
        return any(s["name"] == "prepare" and s["phase"] == "Running" for s in steps)

    wait_for(step_running, f"step prepare of {job} to be Running")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| MLJob | kstatus | kstatus message | Argo CD health | Argo CD message |",
        "| --- | --- | --- | --- | --- |",
    ]
    for state, line in rows.items():
        ks, argo = line["kstatus"], line["argocd"]
        lines.append(
            f"| {state} | {ks['status']} | {cell(ks['message'])} | {argo['status']} "
            f"| {cell(argo.get('message', ''))} |"
        )
    return "\n".join(lines)


def documented_table() -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), DOC.read_text(), re.S)
    assert match, f"docs/gitops.md has no verdict table between {BEGIN!r} and {END!r}"
    return match.group(1).strip()


def test_kstatus_and_argocd_verdicts_on_real_mljobs(
    api_client, control_plane, own_namespace, gitops_verdict, tmp_path
):
    ns = own_namespace
    snapshots: dict[str, dict] = {}

    # No operator serves this namespace yet: the API server alone answers.
    created = create(api_client, MLJOB, ns, mljob("created", spark("prepare"), ray("train")))
    assert created.get("status") == {"observedGeneration": 0}, "the CRD's status default"
    for name, steps in [
        ("running", [spark("prepare"), ray("train")]),
        ("suspended", [spark("prepare"), ray("train")]),
        ("failed", [spark("prepare"), ray("train")]),
        ("succeeded", [spark("prepare")]),
        ("changed", [spark("prepare")]),
    ]:
        create(api_client, MLJOB, ns, mljob(name, *steps))
    read_back = get(api_client, MLJOB, ns, "created")
    assert read_back.get("status") == {"observedGeneration": 0}
    snapshots["just created, no operator yet"] = read_back
    first = verdicts(gitops_verdict, [created, read_back], HEALTH_LUA)
    assert [(v["kstatus"]["status"], v["argocd"]["status"]) for v in first] == [
        ("InProgress", "Progressing")
    ] * 2, first

    operator = OperatorProcess(control_plane, tmp_path / "operator.log", namespaces=[ns])
    try:
        operator.start()
        # The operator's first write goes over the defaulted status (a merge patch).
        wait_for(
            lambda: get(api_client, MLJOB, ns, "created")["status"].get("observedGeneration") == 1,
            "the operator's first status write on MLJob created",
        )
        spark_running(api_client, ns, "running")
        spark_running(api_client, ns, "suspended")
        patch_spec(api_client, ns, "suspended", {"suspend": True})
        wait_phase(api_client, ns, "suspended", "Suspended")
        for job, state, error in [
            ("failed", "FAILED", "driver OOMKilled"),
            ("succeeded", "COMPLETED", ""),
            ("changed", "COMPLETED", ""),
        ]:
            finish_spark(api_client, ns, spark_app(api_client, ns, job), state, error)
        wait_phase(api_client, ns, "failed", "Failed")
        wait_phase(api_client, ns, "succeeded", "Succeeded")
        wait_phase(api_client, ns, "changed", "Succeeded")
    finally:
        operator.stop()

    # The operator is gone: nothing moves any more. A spec change now stays unobserved.
    changed = patch_spec(api_client, ns, "changed", {"image": "example.com/churn:2"})
    assert changed["metadata"]["generation"] == 2
    snapshots["Running"] = get(api_client, MLJOB, ns, "running")
    snapshots["Suspended (spec.suspend)"] = get(api_client, MLJOB, ns, "suspended")
    snapshots["Failed"] = get(api_client, MLJOB, ns, "failed")
    snapshots["Succeeded"] = get(api_client, MLJOB, ns, "succeeded")
    snapshots["spec changed, not yet observed"] = get(api_client, MLJOB, ns, "changed")
    assert snapshots["Running"]["status"]["phase"] == "Running"
    assert snapshots["spec changed, not yet observed"]["status"]["observedGeneration"] == 1

    states = list(EXPECTED)
    results = verdicts(gitops_verdict, [snapshots[s] for s in states], HEALTH_LUA)
    rows = dict(zip(states, results, strict=True))
    written = table(rows)
    (tmp_path / "gitops-verdicts.md").write_text(written + "\n")
    print(f"verdict table ({tmp_path / 'gitops-verdicts.md'}):\n{written}")

    got = {s: (r["kstatus"]["status"], (r["argocd"] or {}).get("status")) for s, r in rows.items()}
    assert got == EXPECTED, written
    assert written == documented_table(), (
        f"docs/gitops.md's verdict table differs from what the tools said; the table:\n{written}"
    )
