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
from mljob import kinds, kube, schedule
from mljob.validation import validate

WEBHOOK_ID = "validate-mljob"  # also the URL path: https://<service>/validate-mljob
SCHEDULE_WEBHOOK_ID = "validate-scheduledmljob"


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    verb: str = "create"

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}.{self.group}"


def child_permissions(mljob: dict[str, Any]) -> list[Permission]:
    """What a user must be allowed to do to run this MLJob without the operator's help: create
    every kind of child it produces, and patch those a later run updates in place (a serve
    step's RayService)."""
    permissions = []
    for kind in kinds.produced(mljob):
        permissions.append(Permission(kind.group, kind.plural))
        if kind.updated_in_place:
            permissions.append(Permission(kind.group, kind.plural, "patch"))
    return permissions


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


def schedule_permissions(scheduled: dict[str, Any]) -> list[Permission]:
    """What a user must be allowed to do to own a ScheduledMLJob: create its runs (MLJobs) and
    every kind of child those runs produce."""
    template = (scheduled.get("spec") or {}).get("template") or {}
    run = {"spec": template.get("spec") or {}}
    return [Permission(c.GROUP, c.PLURAL), *child_permissions(run)]


@kopf.on.validate(
    c.GROUP, c.VERSION, schedule.PLURAL, id=SCHEDULE_WEBHOOK_ID, operations=["CREATE", "UPDATE"]
)
async def validate_scheduled_mljob(
    body: kopf.Body, namespace: str, userinfo: dict[str, Any], **_: Any
) -> None:
    """A ScheduledMLJob: its own fields and its template through the MLJob's validate()
    (schedule.validate_scheduled), then the user's right to create what its runs create."""
    scheduled = dict(body)
    errors = schedule.validate_scheduled(scheduled)
    if errors:
        raise kopf.AdmissionError("invalid ScheduledMLJob: " + "; ".join(errors), code=422)
    missing = await _check(schedule_permissions(scheduled), namespace, userinfo)
    if missing:
        user = userinfo.get("username", "?")
        wanted = ", ".join(str(p) for p in missing)
        raise kopf.AdmissionError(
            f"user {user!r} may not {wanted} in namespace {namespace!r}, and this "
            "ScheduledMLJob's runs would create them; ask for that permission",
            code=403,
        )


async def _missing_permissions(
    mljob: dict[str, Any], namespace: str, userinfo: dict[str, Any]
) -> list[Permission]:
    return await _check(child_permissions(mljob), namespace, userinfo)


async def _check(
    permissions: list[Permission], namespace: str, userinfo: dict[str, Any]
) -> list[Permission]:
    api = kube.api()
    checks = [
        asyncio.to_thread(api.can, userinfo, perm.verb, namespace, perm.group, perm.resource)
        for perm in permissions
    ]
    allowed = await asyncio.gather(*checks)
    return [p for p, ok in zip(permissions, allowed, strict=True) if not ok]
