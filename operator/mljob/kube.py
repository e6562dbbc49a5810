"""Kubernetes API calls of the operator: the only I/O the glue does besides Events.

Each call maps the API's answers to what the reconciler needs to know: a 409 on create means the
child exists already (deterministic names make creates idempotent), a 404 on delete means done,
and any other refusal of a create is a `Rejected` carrying the API server's own message.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config

from mljob import constants as c
from mljob import metrics
from mljob.expectations import Exists, Rejected, create_error

Obj = dict[str, Any]
Resource = tuple[str, str, str]  # (group, version, plural)
# Parallel API calls (threads and pooled connections); reconciles of different MLJobs overlap.
POOL_SIZE = 32


__all__ = ["Api", "Exists", "Rejected", "api"]
_shared: Api | None = None


def api() -> Api:
    """The process's one Api, made from the environment on first use: the glue and the
    admission webhook share it (and its connection pool)."""
    global _shared
    if _shared is None:
        _shared = Api.from_environment()
    return _shared


class Api:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.objects = client.CustomObjectsApi(api_client)
        self.authorization = client.AuthorizationV1Api(api_client)

    @classmethod
    def from_environment(cls) -> Api:
        """In-cluster service account when there is one, else the kubeconfig."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
        # Reconciles run in parallel threads; urllib3's default pool (4) would churn sockets.
        configuration.connection_pool_maxsize = POOL_SIZE
        return cls(client.ApiClient(configuration))

    def create(self, resource: Resource, namespace: str, body: Obj) -> Obj | Exists | Rejected:
        """Create with strict field validation. Returns the created object, Exists (with the
        object read back) on a 409, or Rejected when the API server refused it."""
        group, version, plural = resource
        try:
            with metrics.api_request("create"):
                return self.objects.create_namespaced_custom_object(
                    group, version, namespace, plural, body, field_validation="Strict"
                )
        except client.ApiException as error:
            if error.status == 409:
                return Exists(self.get(resource, namespace, body["metadata"]["name"]))
            rejected = create_error(error.status, _message(error))
            if rejected is None:
                raise
            return rejected

    def update(self, resource: Resource, namespace: str, body: Obj) -> Obj | Rejected | None:
        """Replace a child's spec with `body`'s and add `body`'s labels and annotations to its
        own (a serve step's RayService, updated in place by a new run): one JSON patch, so
        KubeRay's status writes in between never conflict. Returns the updated object, None
        when it is gone (404), or Rejected when the API server refused it."""
        group, version, plural = resource
        name = body["metadata"]["name"]
        try:
            live = self.get(resource, namespace, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        meta = live.get("metadata") or {}
        operations = [{"op": "replace", "path": "/spec", "value": body["spec"]}]
        for field in ("labels", "annotations"):
            if body["metadata"].get(field):
                merged = {**(meta.get(field) or {}), **body["metadata"][field]}
                operations.append({"op": "add", "path": f"/metadata/{field}", "value": merged})
        try:
            with metrics.api_request("patch"):
                return self.objects.patch_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    operations,
                    field_validation="Strict",
                    _content_type="application/json-patch+json",
                )
        except client.ApiException as error:
            if error.status == 404:
                return None
            rejected = create_error(error.status, _message(error))
            if rejected is None:
                raise
            return rejected

    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        group, version, plural = resource
        with metrics.api_request("get"):
            return self.objects.get_namespaced_custom_object(
                group, version, namespace, plural, name
            )

    def find(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        """The object as the API server has it now, or None when there is none (404)."""
        try:
            return self.get(resource, namespace, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_child(self, resource: Resource, namespace: str, name: str, patch: Obj) -> None:
        """JSON merge patch of a child's spec (only ever `suspend`); a 404 means it is gone."""
        group, version, plural = resource
        try:
            with metrics.api_request("patch"):
                self.objects.patch_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    patch,
                    _content_type="application/merge-patch+json",
                )
        except client.ApiException as error:
            if error.status != 404:
                raise

    def delete(self, resource: Resource, namespace: str, name: str) -> None:
        group, version, plural = resource
        try:
            with metrics.api_request("delete"):
                self.objects.delete_namespaced_custom_object(
                    group, version, namespace, plural, name, propagation_policy="Background"
                )
        except client.ApiException as error:
            if error.status != 404:
                raise

    def patch_mljob_status(self, namespace: str, name: str, status: Obj) -> Obj | None:
        """Merge-patch the status subresource (never the spec). None if the MLJob is gone."""
        try:
            with metrics.api_request("patch"):
                return self.objects.patch_namespaced_custom_object_status(
                    c.GROUP, c.VERSION, namespace, c.PLURAL, name, {"status": status}
                )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_status(
        self, resource: Resource, namespace: str, name: str, status: Obj
    ) -> Obj | None:
        """Merge-patch the status subresource of any of our kinds (a ScheduledMLJob). None if
        the object is gone."""
        group, version, plural = resource
        try:
            with metrics.api_request("patch"):
                return self.objects.patch_namespaced_custom_object_status(
                    group, version, namespace, plural, name, {"status": status}
                )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def can(self, user: Obj, verb: str, namespace: str, group: str, resource: str) -> bool:
        """Ask the API server (SubjectAccessReview) whether `user` (an admission request's
        userInfo) may do `verb` on `resource` in `namespace`."""
        with metrics.api_request("create"):
            review = self.authorization.create_subject_access_review(
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {
                        "user": user.get("username"),
                        "uid": user.get("uid"),
                        "groups": user.get("groups") or [],
                        "extra": user.get("extra") or {},
                        "resourceAttributes": {
                            "namespace": namespace,
                            "verb": verb,
                            "group": group,
                            "resource": resource,
                        },
                    },
                }
            )
        return bool(review.status.allowed)


def _message(error: client.ApiException) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"
