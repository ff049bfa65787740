"""The one place a counter's key is spelled: `<counter>|<owner>|<window seconds>|<window start>`.

The engine reserves and reads counters under these keys, a held call's reservation stores them, and tests read a
counter back through the same function, so the format cannot drift between them.
"""

from __future__ import annotations

from service.policy.decision import ToolCall


def grant_owner(grant_id: str) -> str:
    return "g=" + grant_id


def owner_for(scope: str, call: ToolCall) -> str:
    """Whose counter a call moves under a limit's `scope`."""
    if scope == "grant":
        return "g=" + call.grant.id
    if scope == "session":
        # The stateless 2026-07-28 revision has no session: such calls count against their grant.
        return "s=" + call.session_id if call.session_id else "g=" + call.grant.id
    if scope == "tool":
        return "t=" + call.tool
    return "*"


def counter_slot(counter: str, owner: str, window_seconds: int, now: float) -> tuple[str, int]:
    """The key of the counter's window at `now`, and when that window ends."""
    start = int(now // window_seconds) * window_seconds
    return f"{counter}|{owner}|{window_seconds}|{start}", start + window_seconds


def counter_key(counter: str, owner: str, window_seconds: int, now: float) -> str:
    return counter_slot(counter, owner, window_seconds, now)[0]
