"""The web UI: a presentation layer over the services, served by the same process under `/`.

File roles: `pages/*.py` hold thin handlers (parse, call one service function, render), `views.py` shapes service
results for templates, `auth.py` and `sessions.py` are who is signed in and the CSRF check, `live.py` is the
queue's WebSocket, `rendering.py` is Jinja (autoescaped everywhere) and the security headers, `errors.py` turns the
one error hierarchy (service/errors.py) into friendly pages. No SQL and no business rules live here.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import AirlockError
from service.oidc.client import Providers
from service.state import AppState
from webui import errors, live
from webui.pages import consent, dashboard, grants, history, login, oidc, queue, requests, rules, users
from webui.rendering import SecurityHeaders, static_dir


def install(api: FastAPI) -> None:
    """Mount the pages, the static files and the live socket on the app's FastAPI part, and render errors as pages."""
    api.add_exception_handler(AirlockError, errors.airlock_error)
    api.add_exception_handler(StarletteHTTPException, errors.http_error)
    api.add_exception_handler(RequestValidationError, errors.validation_error)
    api.add_exception_handler(Exception, errors.unexpected_error)
    api.add_middleware(SecurityHeaders)
    for module in (login, oidc, queue, requests, history, rules, grants, users, dashboard, consent):
        api.include_router(module.router, include_in_schema=False)
    api.include_router(live.router)
    api.mount("/static", StaticFiles(directory=static_dir()), name="static")


def on_start(api: FastAPI, state: AppState) -> None:
    """What needs the running state: the hub that feeds open queue pages from the approval events, and the identity
    providers with their cached documents."""
    api.state.live_hub = hub = live.LiveHub.listening_to(state.bus)
    if state.caches is not None:  # sessions ended by the CLI or another replica close this process's pages too
        state.caches.watch_sessions(hub.sessions_ended_elsewhere)
    api.state.oidc_providers = Providers.from_settings(state.runtime.settings.oidc, state.runtime.clock)
