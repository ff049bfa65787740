"""An edit is a JSON merge patch on the exact arguments under review: what the approver did not touch is carried
over as it is."""

from __future__ import annotations

import pytest

from service.approvals.edits import apply_patch
from service.errors import InvalidInput

ORIGINAL = {
    "prompt": "a lighthouse " + "x" * 5000 + " at dusk",
    "n": 4,
    "style": {"palette": ["teal", "amber"], "grain": 0.3, "frame": {"width": 2, "color": "black"}},
    "tags": ["sea", "night"],
}


def test_untouched_values_are_carried_over_as_they_are() -> None:
    edited = apply_patch(ORIGINAL, {"n": 1})
    assert edited == {**ORIGINAL, "n": 1}
    assert edited["prompt"] is ORIGINAL["prompt"]  # the very value, not a copy cut or re-rendered anywhere
    assert edited["style"] is ORIGINAL["style"]
    assert ORIGINAL["n"] == 4  # the original is left alone


def test_nested_objects_merge_and_null_removes_a_key() -> None:
    edited = apply_patch(ORIGINAL, {"style": {"grain": None, "frame": {"color": "white"}}, "tags": None})
    assert edited["style"] == {"palette": ["teal", "amber"], "frame": {"width": 2, "color": "white"}}
    assert "tags" not in edited
    assert apply_patch(ORIGINAL, {"absent": None}) == ORIGINAL


def test_arrays_are_replaced_whole() -> None:
    assert apply_patch(ORIGINAL, {"tags": ["day"]})["tags"] == ["day"]
    assert apply_patch(ORIGINAL, {"style": {"palette": []}})["style"]["palette"] == []


def test_an_object_over_a_scalar_is_a_new_object_without_its_nulls() -> None:
    assert apply_patch({"n": 4}, {"n": {"min": 1, "max": None}}) == {"n": {"min": 1}}


@pytest.mark.parametrize("patch", [["n", 1], "n=1", 1, None])
def test_a_patch_that_is_not_an_object_is_refused(patch: object) -> None:
    with pytest.raises(InvalidInput, match="JSON merge patch"):
        apply_patch(ORIGINAL, patch)
