"""Request dependencies for the REST API: the app's state, and the user behind a personal API token."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse

from service.db.engine import reading, unit_of_work
from service.errors import AirlockError, NotAuthenticated
from service.state import AppState
from service.users import service as users
from service.users.models import User


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.airlock
    return state


StateDep = Annotated[AppState, Depends(app_state)]


async def current_user(request: Request, state: StateDep) -> User:
    header = request.headers.get("authorization", "")
    if header[:7].lower() != "bearer " or not header[7:].strip():
        raise NotAuthenticated("an API token is required: Authorization: Bearer <token>")
    token = header[7:].strip()

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
    headers: dict[str, Any] = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    return JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=headers)
