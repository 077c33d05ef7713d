"""Request dependencies as ``Annotated`` aliases: settings, store, storage, sender, caller.

Everything comes from ``app.state``, filled once by ``create_app``; nothing here reads the
environment or builds clients.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import Storage
from service.auth import ApiKeys
from service.queue import TaskSender
from service.views import JobViewer

_bearer = HTTPBearer(auto_error=False, description="An API key from MIMICMOTION_API_KEYS.")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def _task_sender(request: Request) -> TaskSender:
    sender: TaskSender = request.app.state.task_sender
    return sender


def _owner(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    api_keys: ApiKeys = request.app.state.api_keys
    return api_keys.owner_for(credentials.credentials if credentials is not None else None)


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
StorageDep = Annotated[Storage, Depends(_storage)]
TaskSenderDep = Annotated[TaskSender, Depends(_task_sender)]
OwnerDep = Annotated[str, Depends(_owner)]
ApiKeyDep = OwnerDep  # the caller, identified by the hash of its API key


def _viewer(settings: SettingsDep, store: StoreDep, storage: StorageDep) -> JobViewer:
    return JobViewer(store=store, storage=storage, url_ttl_s=settings.output_url_ttl_s)


JobViewerDep = Annotated[JobViewer, Depends(_viewer)]
