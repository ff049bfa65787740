"""An approver's edit: a JSON merge patch (RFC 7396) on the exact arguments under review.

Values the approver did not touch are carried over as they are, byte for byte; a channel sends only what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply_patch(original: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A new object: `patch`'s keys set over `original`'s, nested objects merged, a null removing its key."""
    merged = dict(original)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = apply_patch(merged[key], value)
        else:
            merged[key] = value
    return merged
