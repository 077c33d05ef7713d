"""``GET /models``: the models this deployment serves, with their parameters and whether a worker serves each.

The playground and the client build their parameter forms from ``params_schema``; ``live_workers`` 0 means
a job for that model waits in its queue until a worker of it starts.
"""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from core.contract.models import MODEL_CARDS
from core.contract.params import DEFAULT_MODEL, PARAMS_BY_MODEL
from core.contract.queues import model_queue
from core.jobs.heartbeats import WorkerHeartbeats
from service.deps import OwnerDep, SettingsDep, StoreDep
from service.errors import error_responses
from service.readiness import workers_by_model
from service.schemas import ModelList, ModelPublic

router = APIRouter(tags=["models"], responses=error_responses(401))


@router.get("/models", response_model=ModelList, summary="List the models this server serves")
async def list_models(_: OwnerDep, store: StoreDep, settings: SettingsDep) -> ModelList:
    live = await run_in_threadpool(WorkerHeartbeats(store.db).live)
    served = workers_by_model(live)
    return ModelList(
        data=[
            ModelPublic(
                name=name,
                default=name == DEFAULT_MODEL,
                title=MODEL_CARDS[name].title,
                license=MODEL_CARDS[name].license,
                summary=MODEL_CARDS[name].summary,
                queue=model_queue(name),
                live_workers=len(served.get(name, [])),
                params_schema=PARAMS_BY_MODEL[name].model_json_schema(),
            )
            for name in settings.models
        ]
    )
