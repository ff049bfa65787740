"""Request dependencies for the REST API: the app's state, and the user behind a personal API token."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse

from service.db.engine import reading, unit_of_work
from service.edge import bearer_token, error_body, error_headers
from service.errors import AirlockError, NotAuthenticated
from service.state import AppState
from service.users import service as users
from service.users.models import User


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.airlock
    return state


StateDep = Annotated[AppState, Depends(app_state)]


async def current_user(request: Request, state: StateDep) -> User:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise NotAuthenticated("an API token is required: Authorization: Bearer <token>")

    def load() -> User:
        with reading(state.runtime.engine) as session:
            user, api_token = users.identify_token(session, state.runtime.hasher, token)
        if users.needs_touch(api_token) and api_token.id is not None:
            with unit_of_work(state.runtime.engine) as session:
                users.touch_token(session, api_token.id)
        return user

    return await anyio.to_thread.run_sync(load)


CurrentUser = Annotated[User, Depends(current_user)]

RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A row's number")]
"""An id in a URL: a number the database can hold, so a huge one is a 422 and not a driver error."""


async def render_error(request: Request, exc: Exception) -> JSONResponse:
    """Every handled error is a status code with a reason; never a traceback."""
    assert isinstance(exc, AirlockError)
    return JSONResponse(error_body(exc.message), status_code=exc.status_code, headers=error_headers(exc))
