from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlmodel import Session

from service.approvals import queries, service
from service.approvals.models import ToolCallRequest
from service.approvals.schemas import Approver, RequestPublic, Verdict
from service.approvals.view import ArgumentsView, escape_invisible
from service.arguments import parse_request_id
from service.cli.common import (
    CLI_ACTOR,
    ConfigOption,
    DataDirOption,
    JsonOption,
    print_json,
    print_table,
    runtime,
    to_jsonable,
)
from service.db.engine import unit_of_work
from service.users.models import Role
from service.users.service import get_user

app = typer.Typer(help="Held calls: list, show, approve, reject.", no_args_is_help=True)

AsUser = Annotated[str, typer.Option("--as", help="The approver's username (their role and rules apply).")]
RequestId = Annotated[str, typer.Argument(help="The request, as R-123 or 123.")]
# Whoever runs the CLI holds the database: `requests show` without --as shows what a decider sees.
_OPERATOR = Approver(CLI_ACTOR, Role.ADMIN, "cli")
_PEEK_CHARS = 40
_DIGEST_PREFIX = 12


def _id(text: str) -> int:
    request_id = parse_request_id(text)
    if request_id is None:
        from service.errors import InvalidInput

        raise InvalidInput(f"{text!r} is not a request id such as R-123")
    return request_id


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="pending, approved, ... (comma-separated)")] = "pending",
    tool: Annotated[str | None, typer.Option(help="Only calls of this tool.")] = None,
    grant: Annotated[str | None, typer.Option(help="Only calls of this grant (by name).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List requests with a peek at their arguments (cut; `show` has them in full)."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        result = queries.page(session, status=status or None, tool=tool, grant=grant, limit=limit, cursor=None)
    if as_json:
        print_json(result)
        return
    rows = [
        {
            "id": r.public_id,
            "arguments": _peek(r),
            "status": r.status,
            "tool": r.tool,
            "grant": r.grant,
            "cost": f"${r.cost_usd:.2f}" if r.cost_usd is not None else None,
            "deadline": r.deadline.isoformat(timespec="seconds"),
            "gone": "yes" if r.requester_gone else None,
        }
        for r in result.items
    ]
    print_table(rows, ["id", "status", "tool", "grant", "cost", "deadline", "gone", "arguments"])
    if rows:
        typer.echo("Arguments are cut here; `airlock requests show R-n` shows them all, and approving needs that view.")


def _peek(item: RequestPublic) -> str:
    text = escape_invisible(json.dumps(item.arguments, ensure_ascii=False, separators=(",", ":")))
    if len(text) <= _PEEK_CHARS:
        return text
    return f"{text[:_PEEK_CHARS]}… (+{len(text) - _PEEK_CHARS} chars)"


@app.command("show")
def show(
    request_id: RequestId,
    as_user: Annotated[str | None, typer.Option("--as", help="Show it as this user sees it.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every argument value in full (declared secrets masked) and the digest an approval must carry."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        viewer = _approver(session, as_user) if as_user else _OPERATOR
        if as_json:
            # ASCII-only: a value's control or bidi characters arrive escaped, never raw in the terminal.
            detail = queries.detail(session, _id(request_id), viewer)
            typer.echo(json.dumps(to_jsonable(detail), ensure_ascii=True, default=str))
            return
        request = service.get(session, _id(request_id))
        typer.echo(_full_view(request, service.arguments_view(request, viewer)))


def _full_view(request: ToolCallRequest, view: ArgumentsView) -> str:
    lines = [
        f"{request.public_id}  {request.status.value}  {escape_invisible(request.tool)}  rule {request.rule}",
        "Arguments under review" + ("" if view.full else " (the logged view: you may not decide this request)") + ":",
        view.text(),
    ]
    lines += [f"masked (declared secret): {p}; reveal with POST /api/requests/{request.id}/reveal" for p in view.masked]
    lines += [f"binary {b.media_type} at {b.pointer}: {b.size:,} bytes, sha256 {b.sha256}" for b in view.blobs]
    lines.append(f"arguments digest: {view.digest}")
    return "\n".join(lines)


@app.command("approve")
def approve(
    request_id: RequestId,
    as_user: AsUser,
    digest: Annotated[
        str | None,
        typer.Option(help="The arguments digest `requests show` printed (or a unique prefix of 12+ hex digits)."),
    ] = None,
    comment: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Approve what you saw: without --digest it prints the full view and decides nothing."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        approver = _approver(session, as_user)
        request = service.get(session, _id(request_id))
        if digest is None or not _is_hex_prefix(digest):
            typer.echo(_full_view(request, service.arguments_view(request, approver)))
            typer.echo(
                f"Nothing approved: read the arguments above, then re-run with --digest {request.review_digest}",
                err=True,
            )
            raise typer.Exit(1)
        seen = request.review_digest if request.review_digest.startswith(digest.lower()) else digest
        decided, _events = service.apply_verdict(
            session, request.id or 0, approver, Verdict.APPROVE, reason=comment, counters=rt.counters, seen_digest=seen
        )
    typer.echo(f"{decided.public_id} {decided.status.value} by {as_user}")


def _is_hex_prefix(text: str) -> bool:
    return len(text) >= _DIGEST_PREFIX and all(c in "0123456789abcdef" for c in text.lower())


@app.command("reject")
def reject(
    request_id: RequestId,
    as_user: AsUser,
    reason: Annotated[str, typer.Option(help="What the agent is told.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Reject a request; the agent reads the reason."""
    _decide(request_id, as_user, Verdict.REJECT, reason, config, data_dir)


def _approver(session: Session, username: str) -> Approver:
    user = get_user(session, username)
    return Approver.of_user(user, "cli")


def _decide(
    request_id: str, username: str, verdict: Verdict, reason: str | None, config: ConfigOption, data_dir: DataDirOption
) -> None:
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        approver = _approver(session, username)
        request, _events = service.apply_verdict(
            session, _id(request_id), approver, verdict, reason=reason, counters=rt.counters
        )
    typer.echo(f"{request.public_id} {request.status.value} by {username}")
