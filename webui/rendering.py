"""Turning what the services return into HTML: the Jinja environment (autoescaped everywhere), its filters,
the flash message that survives one redirect, and the security headers every response carries."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.approvals.view import escape_invisible

if TYPE_CHECKING:
    from webui.auth import WebUser

FLASH_COOKIE = "airlock_flash"

# Everything an agent sent is untrusted, so nothing may run but our own static scripts: no inline scripts or
# handlers, no foreign origins. The WebSocket of the live queue is same-origin ('self' covers ws: and wss:).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 0:
        return "just now"
    return f"{_span(seconds)} ago" if seconds >= 5 else "just now"


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _left(deadline: datetime | None) -> str:
    if deadline is None:
        return ""
    seconds = (deadline - datetime.now(UTC)).total_seconds()
    return "expired" if seconds <= 0 else _span(seconds)


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else _span(seconds) if seconds >= 1 else f"{seconds:.1f}s"


def _usd(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _micros(value: int | None) -> str:
    return _usd(value / 1_000_000 if value is not None else None)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else ""


def _pretty(value: Any) -> str:
    return escape_invisible(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str))


def _compact(value: Any) -> str:
    """JSON on one line, as plain text (autoescaping then shows any markup in it as the characters it is; control,
    bidi and zero-width characters are escaped)."""
    return escape_invisible(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def rule_anchor(pointer: str | None) -> str:
    """The id of a rule on the rules page, from its JSON Pointer (ids must not contain '/')."""
    return "rule" + re.sub(r"[^A-Za-z0-9_-]+", "-", pointer or "")


def _build_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("webui", "templates"),
        autoescape=True,  # every template, whatever its name: agent input only ever renders as text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=_ago,
        left=_left,
        usd=_usd,
        duration=_duration,
        micros=_micros,
        when=_when,
        iso=_iso,
        pretty=_pretty,
        compact=_compact,
        anchor=rule_anchor,
        urlquote=lambda v: quote(str(v), safe=""),
    )
    return env


_environment: Environment | None = None


def environment() -> Environment:
    global _environment  # noqa: PLW0603 - built once, on first use rather than at import
    if _environment is None:
        _environment = _build_environment()
    return _environment


def render_html(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    user: WebUser | None = getattr(request.state, "web_user", None)
    flash = request.cookies.get(FLASH_COOKIE)
    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            user=user,
            csrf_token=user.csrf_token if user is not None else "",
            flash=flash[:300] if flash else None,
            path=request.url.path,
            **context,
        )
    )
    response = HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store"})
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def render_fragment(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def redirect_with_flash(url: str, message: str | None = None) -> Response:
    response = RedirectResponse(url, status_code=303)
    if message:
        response.set_cookie(FLASH_COOKIE, message[:300], max_age=60, path="/", httponly=True, samesite="lax")
    return response


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def static_dir() -> str:
    return str(resources.files("webui").joinpath("static"))


class SecurityHeaders:
    """Adds the Content-Security-Policy and friends to every HTTP response the FastAPI app sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI's own API docs pages load their scripts from a CDN; they are not the web UI.
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(("/docs", "/redoc")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, send_with_headers)
