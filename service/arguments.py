"""Tool-call arguments: the canonical form that binds an approval, and the safe view that logs may show.

The canonical form is JSON with sorted keys, no insignificant whitespace and UTF-8 text (never \\u escapes),
so key order and the way a client escaped its unicode do not change the digest. Strings are not
normalised (NFC): two spellings of a name are two different calls to the upstream.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

MAX_ARGUMENT_DEPTH = 64
"""How deep a tool call's arguments may nest objects and arrays (the arguments object itself is level 1); deeper
ones are refused before the policy (docs/security.md). Real tools nest a few levels. The limit keeps every later
step (digest, schema check, redaction, the upstream's own parser) far from Python's recursion limit."""

TOO_DEEP = f"the arguments nest objects and arrays deeper than {MAX_ARGUMENT_DEPTH} levels"

REDACTED = "[REDACTED]"
# Key fragments that mark a value as a credential. Matched on the key lower-cased, without separators.
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "cookie",
    "sessionid",
    "signature",
)
_BLOB_MIN_CHARS = 1024
_BASE64ISH = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)


# One encoder for every canonical text: json.dumps with these options builds a new encoder on each call, which
# cost more than the encoding itself for the gateway's small audit rows.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (a scalar is level 0). Iterative: it must
    not meet the recursion limit that it protects the rest of the gateway from."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """sha256 of the canonical arguments, hex."""
    return hashlib.sha256(canonical_json(dict(arguments)).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4096)  # the same few keys, on every audit event
def looks_secret(key: str) -> bool:
    folded = key.lower().replace("_", "").replace("-", "").replace(".", "")
    return any(part in folded for part in _SECRET_KEY_PARTS)


def is_blob(value: str) -> bool:
    """A long base64 payload or data URL: shown by size and digest, never inline."""
    if len(value) < _BLOB_MIN_CHARS:
        return False
    return bool(_DATA_URL.match(value)) or bool(_BASE64ISH.match(value[:4096]))


def storable_text(text: str) -> str:
    """Agent-chosen text (a tool name) as the database can store it: a lone surrogate becomes its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def blob_summary(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    return f"[blob {len(value)} chars sha256:{digest}]"


def redact(value: Any, *, max_string: int | None = None, extra_keys: frozenset[str] = frozenset()) -> Any:
    """A copy that is safe to log or show: secrets masked, blobs summarised, long strings cut. `extra_keys`: the
    operator's redact_keys, lower-cased, masked besides the conservative list."""
    if isinstance(value, Mapping):
        return {
            str(k): (
                REDACTED
                if looks_secret(str(k)) or (extra_keys and str(k).lower() in extra_keys)
                else redact(v, max_string=max_string, extra_keys=extra_keys)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, max_string=max_string, extra_keys=extra_keys) for v in value]
    if isinstance(value, str):
        if is_blob(value):
            return blob_summary(value)
        if max_string is not None and len(value) > max_string:
            return value[:max_string] + f"… [{len(value)} chars]"
    return value


_REQUEST_ID = re.compile(r"(?:R-)?([0-9]{1,18})", re.IGNORECASE)


def parse_request_id(text: object) -> int | None:
    """The number in a request id as people and agents write it ("R-12", "r-12", "12"); None for anything else,
    including digits int() would refuse and numbers too large for the database."""
    if not isinstance(text, str):
        return None
    found = _REQUEST_ID.fullmatch(text.strip())
    return int(found.group(1)) if found else None
