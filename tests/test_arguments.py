from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.arguments import arguments_digest, canonical_json, redact

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
arguments = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@given(arguments, st.integers())
def test_key_order_does_not_change_the_digest(args: dict[str, Any], seed: int) -> None:
    assert arguments_digest(shuffled(args, random.Random(seed))) == arguments_digest(args)


@given(arguments)
def test_how_a_client_escaped_its_unicode_does_not_change_the_digest(args: dict[str, Any]) -> None:
    escaped = json.loads(json.dumps(args, ensure_ascii=True))
    raw = json.loads(json.dumps(args, ensure_ascii=False))
    assert arguments_digest(escaped) == arguments_digest(raw) == arguments_digest(args)


@given(arguments, arguments)
def test_different_arguments_have_different_digests(a: dict[str, Any], b: dict[str, Any]) -> None:
    if canonical_json(a) != canonical_json(b):
        assert arguments_digest(a) != arguments_digest(b)


def test_canonical_form_is_compact_sorted_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_redaction_masks_secrets_and_summarises_blobs() -> None:
    image = "iVBORw0KGgo" + "A" * 3000
    shown = redact(
        {
            "prompt": "a cat",
            "apiKey": "sk-123",
            "headers": {"Authorization": "Bearer x"},
            "images": [image, "data:image/png;base64," + "B" * 2000],
            "client_secret": "s",
        }
    )
    assert shown["prompt"] == "a cat"
    assert shown["apiKey"] == shown["client_secret"] == "[REDACTED]"
    assert shown["headers"]["Authorization"] == "[REDACTED]"
    assert shown["images"][0].startswith("[blob 3011 chars sha256:")
    assert shown["images"][1].startswith("[blob")
    assert redact("x" * 50, max_string=10) == "x" * 10 + "… [50 chars]"
