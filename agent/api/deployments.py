"""GET/POST /api/v1/deployments: deploy markers, explicit and detected from the data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from strata.agent.api.render import count_query, parse_time, rfc3339
from strata.agent.model import Deployment
from strata.agent.store.seam import report_reads

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost


class DeploymentIn(BaseModel):
    service: str = Field(..., min_length=1, max_length=256)
    version: str | None = Field(None, max_length=256)
    previous_version: str | None = Field(
        None, max_length=256, description="Default: the service's last known version.")
    model: str | None = Field(None, max_length=256)
    previous_model: str | None = Field(None, max_length=256)
    time: str | None = Field(None, description="Event time (RFC 3339); default: now.")
    description: str | None = Field(None, max_length=2000)


def render_deployment(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"service": row[0], "time": rfc3339(int(row[1])), "version": row[2],
            "previous_version": row[3], "model": row[4], "previous_model": row[5],
            "source": row[6], "description": row[7]}


def build_router(agent: ApiHost) -> APIRouter:
    router = APIRouter(tags=["deployments"])

    @router.get("/api/v1/deployments")
    def deployments(
        service: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = count_query(500, le=5000),
    ) -> dict[str, Any]:
        """Deployments: explicit markers and changes of service.version or model detected in
        the data."""
        since_ns, until_ns = parse_time(since, "since"), parse_time(until, "until")
        rows = report_reads(agent.store).list_deployments(
            service=service, since_ns=since_ns, until_ns=until_ns, limit=limit)
        return {"deployments": [render_deployment(r) for r in rows]}

    @router.post("/api/v1/deployments", status_code=201)
    def add(body: DeploymentIn) -> dict[str, Any]:
        """Add an explicit deployment marker (previous version filled from the last known one)."""
        if body.version is None and body.model is None:
            raise HTTPException(422, "a deployment needs a version or a model")
        time_ns = parse_time(body.time, "time") or agent.clock()
        previous = body.previous_version
        if previous is None and body.version is not None:
            known = agent.store.known_versions().get(body.service)
            if known is not None and known[0] != body.version:
                previous = known[0]
        deployment = Deployment(
            service=body.service, time_unix_nano=time_ns, version=body.version,
            previous_version=previous, model=body.model, previous_model=body.previous_model,
            source="explicit", description=body.description,
        )
        agent.store.add_deployment(deployment)
        return render_deployment((deployment.service, time_ns, deployment.version,
                                  deployment.previous_version, deployment.model,
                                  deployment.previous_model, "explicit",
                                  deployment.description))

    return router
