"""The validating admission webhook for MLJobs, served by the operator (`mljob operator
--webhook-port ...`).

It rejects at `kubectl apply` time what the CRD schema and CEL cannot check (the shared
`validate()`: dependency cycles, child-name limits, the upstream controllers' own rules), and it
checks that the requesting user may create every child kind the MLJob will produce in its
namespace (a SubjectAccessReview per kind). So the right to create MLJobs grants nothing new:
the operator's own, broader permissions are never lent to a user.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import kopf

from mljob import constants as c
from mljob import kinds, kube
from mljob.validation import validate

WEBHOOK_ID = "validate-mljob"  # also the URL path: https://<service>/validate-mljob


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str

    def __str__(self) -> str:
        return f"create {self.resource}.{self.group}"


def child_permissions(mljob: dict[str, Any]) -> list[Permission]:
    """What a user must be allowed to do to run this MLJob without the operator's help: create
    every kind of child it produces."""
    return [Permission(kind.group, kind.plural) for kind in kinds.produced(mljob)]


def denial_message(user: str, namespace: str, missing: list[Permission]) -> str:
    wanted = ", ".join(str(p) for p in missing)
    return (
        f"user {user!r} may not {wanted} in namespace {namespace!r}, and this MLJob would "
        f"create them; ask for that permission (an MLJob grants no rights of its own)"
    )


@kopf.on.validate(c.GROUP, c.VERSION, c.PLURAL, id=WEBHOOK_ID, operations=["CREATE", "UPDATE"])
async def validate_mljob(
    body: kopf.Body, namespace: str, userinfo: dict[str, Any], **_: Any
) -> None:
    mljob = dict(body)
    errors = validate(mljob)
    if errors:
        raise kopf.AdmissionError("invalid MLJob: " + "; ".join(errors), code=422)
    missing = await _missing_permissions(mljob, namespace, userinfo)
    if missing:
        user = userinfo.get("username", "?")
        raise kopf.AdmissionError(denial_message(user, namespace, missing), code=403)


async def _missing_permissions(
    mljob: dict[str, Any], namespace: str, userinfo: dict[str, Any]
) -> list[Permission]:
    api = kube.api()
    checks = [
        asyncio.to_thread(api.can, userinfo, "create", namespace, perm.group, perm.resource)
        for perm in child_permissions(mljob)
    ]
    allowed = await asyncio.gather(*checks)
    return [p for p, ok in zip(child_permissions(mljob), allowed, strict=True) if not ok]
