"""The readiness decision (mljob/readiness.py), without kopf: what each input state makes
`/readyz` wait for. The namespaced-RBAC behaviour on a real API server is tested with the image
(tests/image/test_image.py::test_readiness_means_serving_in_the_namespaced_rbac_mode)."""

from __future__ import annotations

import logging

from mljob import readiness as r

MLJOBS = ("mljob.io", "v1alpha1", "mljobs")
RAYJOBS = ("ray.io", "v1", "rayjobs")
WATCHED = (MLJOBS, RAYJOBS)


def test_kopfs_watcher_failure_line_names_the_resource_and_namespace():
    line = "Watcher for rayjobs.v1.ray.io@team-a has failed: (403) Forbidden"
    assert r.watcher_failure(line) == "rayjobs.v1.ray.io@team-a"
    assert r.watcher_failure("Watcher for mljobs.v1alpha1.mljob.io has failed: boom") == (
        "mljobs.v1alpha1.mljob.io"
    )
    assert r.watcher_failure("Watcher for rayjobs.v1.ray.io@a is starting") is None
    assert r.watcher_failure("Something else has failed") is None


def test_only_the_failed_watchers_of_watched_kinds_count():
    failed = ["rayjobs.v1.ray.io@a", "pods.v1@a", "mljobs.v1alpha1.mljob.io", "rayjobs.v2.ray.io"]
    assert r.our_failures(failed, WATCHED) == ["rayjobs.v1.ray.io@a", "mljobs.v1alpha1.mljob.io"]


def test_the_operators_watched_kinds_are_the_mljob_and_every_child_kind():
    plurals = {plural for _, _, plural in r.WATCHED}
    assert {"mljobs", "sparkapplications", "rayjobs", "rayclusters"} <= plurals


def test_the_filter_records_failures_from_kopfs_log_records():
    failures = r._WatcherFailures()
    for message in ("Watcher for rayjobs.v1.ray.io@a has failed: x", "Watcher started"):
        record = logging.LogRecord("kopf", logging.ERROR, __file__, 1, message, None, None)
        assert failures.filter(record) is True  # recorded, never swallowed
    assert failures.failed == ["rayjobs.v1.ray.io@a"]


def test_scans_and_dead_watchers_hold_everything_else():
    assert r.scan_reasons([], True, True) == []
    assert r.scan_reasons([], False, True) == ["kopf's scan of the cluster's CRDs"]
    assert r.scan_reasons([], True, False) == ["kopf's scan of the namespaces"]
    assert r.scan_reasons(["rayjobs.v1.ray.io@a"], False, False) == [
        "kopf's watcher for rayjobs.v1.ray.io@a failed: restart",
        "kopf's scan of the cluster's CRDs",
        "kopf's scan of the namespaces",
    ]


def test_served_namespaces_are_cluster_wide_or_kopfs_sorted():
    assert r.served_namespaces(True, ["a", "b"]) == [None]
    assert r.served_namespaces(False, {"b", None, "a"}) == ["a", "b"]
    assert r.served_namespaces(False, []) == []


def test_a_missing_crd_is_a_reason():
    found = {("mljob.io", "mljobs")}
    assert r.coverage_reasons(found, [], [None], WATCHED) == [
        "the CRD of rayjobs.ray.io (not found by kopf)"
    ]
    assert r.coverage_reasons(found | {("ray.io", "rayjobs")}, [], [None], WATCHED) == []


def test_a_namespace_given_by_name_must_be_served_a_glob_need_not_match():
    found = {("mljob.io", "mljobs"), ("ray.io", "rayjobs")}
    given = ["team-a", "team-b", "e2e-*", "x?", "[ab]", "!c", "a,b"]
    assert r.coverage_reasons(found, given, ["team-a"], WATCHED) == [
        "namespace 'team-b' (not served by kopf)"
    ]
    assert r.coverage_reasons(found, given, ["team-a", "team-b"], WATCHED) == []


def test_a_list_that_worked_once_is_not_tried_again():
    todo = r.lists_to_try(["a", "b"], set(), WATCHED)
    assert todo == [(MLJOBS, "a"), (MLJOBS, "b"), (RAYJOBS, "a"), (RAYJOBS, "b")]
    assert r.lists_to_try(["a", "b"], {(MLJOBS, "a"), (RAYJOBS, "b")}, WATCHED) == [
        (MLJOBS, "b"),
        (RAYJOBS, "a"),
    ]
    assert r.lists_to_try([None], {(MLJOBS, None)}, WATCHED) == [(RAYJOBS, None)]


def test_a_refused_list_says_where_and_why():
    assert r.list_reason(RAYJOBS, "team-a", "403 Forbidden") == (
        "list rayjobs.ray.io in namespace 'team-a': 403 Forbidden"
    )
    assert r.list_reason(MLJOBS, None, "TimeoutError") == (
        "list mljobs.mljob.io cluster-wide: TimeoutError"
    )


def test_an_api_error_is_its_status_and_reason_else_its_type():
    class ApiError(Exception):
        status, reason = 403, "Forbidden"

    assert r.api_error(ApiError()) == "403 Forbidden"
    assert r.api_error(TimeoutError()) == "TimeoutError"
