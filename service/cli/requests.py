from __future__ import annotations

from typing import Annotated

import typer

from service.approvals import queries, service
from service.approvals.schemas import Approver, Verdict
from service.cli.common import ConfigOption, DataDirOption, JsonOption, print_json, print_table, runtime
from service.db.engine import unit_of_work
from service.users.service import get_user

app = typer.Typer(help="Held calls: list, show, approve, reject.", no_args_is_help=True)

AsUser = Annotated[str, typer.Option("--as", help="The approver's username (their role and rules apply).")]


def _id(text: str) -> int:
    raw = text.strip().upper().removeprefix("R-")
    if not raw.isdigit():
        from service.errors import InvalidInput

        raise InvalidInput(f"{text!r} is not a request id such as R-123")
    return int(raw)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="pending, approved, ... (comma-separated)")] = "pending",
    tool: Annotated[str | None, typer.Option()] = None,
    grant: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        result = queries.page(session, status=status or None, tool=tool, grant=grant, limit=limit, cursor=None)
    if as_json:
        print_json(result)
        return
    rows = [
        {
            "id": r.public_id,
            "status": r.status,
            "tool": r.tool,
            "grant": r.grant,
            "cost": f"${r.cost_usd:.2f}" if r.cost_usd is not None else None,
            "deadline": r.deadline.isoformat(timespec="seconds"),
            "gone": "yes" if r.requester_gone else None,
        }
        for r in result.items
    ]
    print_table(rows, ["id", "status", "tool", "grant", "cost", "deadline", "gone"])


@app.command("show")
def show(request_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        print_json(queries.detail(session, _id(request_id)))


@app.command("approve")
def approve(
    request_id: str,
    as_user: AsUser,
    comment: Annotated[str | None, typer.Option()] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    _decide(request_id, as_user, Verdict.APPROVE, comment, config, data_dir)


@app.command("reject")
def reject(
    request_id: str,
    as_user: AsUser,
    reason: Annotated[str, typer.Option(help="What the agent is told.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    _decide(request_id, as_user, Verdict.REJECT, reason, config, data_dir)


def _decide(
    request_id: str, username: str, verdict: Verdict, reason: str | None, config: ConfigOption, data_dir: DataDirOption
) -> None:
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        user = get_user(session, username)
        approver = Approver(user.username, user.role, "cli", slack_user_id=user.slack_user_id)
        request, _events = service.decide(
            session, _id(request_id), approver, verdict, reason=reason, counters=rt.counters
        )
    typer.echo(f"{request.public_id} {request.status.value} by {username}")
