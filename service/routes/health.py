"""Liveness and readiness probes."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import SettingsDep, StorageDep, StoreDep
from service.readiness import check_readiness
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Redis, storage and a live worker are there",
    responses={503: {"model": Readiness, "description": "Not ready; `missing` says what is absent"}},
)
def readyz(store: StoreDep, storage: StorageDep, settings: SettingsDep) -> JSONResponse:
    readiness = check_readiness(store, storage, settings)
    status = 200 if readiness.status == "ready" else 503
    return JSONResponse(readiness.model_dump(mode="json"), status_code=status)
