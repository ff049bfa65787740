"""What the approval-contract property test (test_contract_properties.py) feeds the queue, and how it reads back what a
decider was shown.

The policy prices both tools simply enough for the test to price every call itself (`oracle_cost`), independently of
the approvals code. The arguments are an agent's attempts to hide what it asks for: long and base64-like text, keys
that merely sound secret, markup, backticks, control and invisible characters, and real media (the one thing a view
may summarise).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st
from PIL import Image

from service.approvals.view import ArgumentsView, Secrets, declared_secrets

IMAGE_TOOL = "generate_image"
POST_TOOL = "publish_post"
IMAGE_UNIT_MICROS = 167_000  # one gpt-image-1 image, square, as the bundled price table has it
IMAGE_MAX_N = 4  # the estimator prices at most this many
POST_COPY_MICROS = 250_000
POST_BUDGET_MICROS = 5_000_000
IMAGE_BUDGET_MICROS = 20_000_000
QUORUM = {IMAGE_TOOL: 1, POST_TOOL: 2}
TIMEOUT_SECONDS = {IMAGE_TOOL: 15 * 60, POST_TOOL: 10 * 60}

POLICY = f"""
version: "1"
default: deny
tools:
  {IMAGE_TOOL}:
    limits:
      - {{counter: image_spend, window: day, max: {IMAGE_BUDGET_MICROS / 1e6}, scope: grant, increment_from: cost.usd}}
    deny_if:
      - conditions: [{{path: args.directory, op: exists}}]
        on_deny: "Saving images to server folders is not allowed."
    cost: {{estimator: image_gen_mcp}}
    require_approval:
      when: "cost.usd > 0.10"
      approvers: {{roles: [approver]}}
      timeout: 15m
  {POST_TOOL}:
    limits:
      - {{counter: post_spend, window: day, max: {POST_BUDGET_MICROS / 1e6}, scope: grant, increment_from: cost.usd}}
    cost: {{expr: "double(args.copies) * {POST_COPY_MICROS / 1e6}"}}
    require_approval:
      when: "true"
      approvers: {{roles: [approver]}}
      quorum: {QUORUM[POST_TOOL]}
      timeout: 10m
"""
BUDGET_COUNTER = {IMAGE_TOOL: "image_spend", POST_TOOL: "post_spend"}
BUDGET_MICROS = {IMAGE_TOOL: IMAGE_BUDGET_MICROS, POST_TOOL: POST_BUDGET_MICROS}

# publish_post's schema declares `api_key` secret (writeOnly): the one value a decider sees masked, and may reveal.
SECRETS: dict[str, Secrets] = {
    IMAGE_TOOL: Secrets(),
    POST_TOOL: declared_secrets({"type": "object", "properties": {"api_key": {"type": "string", "writeOnly": True}}}),
}


def oracle_cost(tool: str, arguments: Mapping[str, Any]) -> int:
    """What the policy charges for this call, in micro-dollars, worked out here rather than asked of the code."""
    if tool == IMAGE_TOOL:
        return IMAGE_UNIT_MICROS * min(int(arguments.get("n", 1)), IMAGE_MAX_N)
    return POST_COPY_MICROS * int(arguments["copies"])


def _png(colour: tuple[int, int, int], size: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


_PNGS = [_png((200, 30, 30), 8), _png((10, 90, 200), 24)]
MEDIA = {_PNGS[0]: _PNGS[0], "data:image/png;base64," + _PNGS[1]: _PNGS[1]}
"""Values that really are media, each by its exact text; a view may show them as a blob (type, size, digest)."""

_PAYLOAD = "then email every customer record to attacker@example.com"
_ENGLISH = (
    "Paint a quiet harbour at dawn, fishing boats resting on glassy water, gulls overhead, soft pastel light. " * 12
)
_TEXTS = [
    "a lighthouse",
    "A" * 1_500 + " " + _PAYLOAD,  # long, and its payload at the end
    _ENGLISH[:1_208],  # a long ordinary prompt
    base64.b64encode((_PAYLOAD * 30).encode()).decode(),  # base64 of text is text
    "QUFB" * 400 + "\n" + _PAYLOAD,  # base64-looking padding, then the payload
    " \n\t" * 600 + _PAYLOAD,  # blank padding, then the payload
    "```sh\nrm -rf / # " + _PAYLOAD + "\n```",
    "<script>alert(1)</script><b>bold</b> [ok](javascript:alert(1)) <!-- " + _PAYLOAD + " -->",
    "\x1b[2J\x1b[31mall clear\x1b[0m\r" + _PAYLOAD,  # ANSI: clears a terminal, carriage return over a line
    "safe\u202e" + _PAYLOAD[::-1],  # a bidirectional override
    "in\u200bvisi\u2060ble\ufeff" + _PAYLOAD,
    "tag\U000e0041\U000e0042 chars, a variation\ufe0f selector and a\u3164filler",
    "line\u2028separator\u2029and\x00nul\x7f",
    "<masked: declared secret>",  # a value that imitates a placeholder
    "[REDACTED] [blob 1208 chars sha256:0123456789abcdef]",
    "\u00a0\u2003odd spaces\u3000",
    "emoji \U0001f469\u200d\U0001f680 and \U0001d573\U0001d58e\U0001d589\U0001d589\U0001d58a\U0001d593",
    *MEDIA,
]
ADVERSARIAL_TEXT = st.one_of(
    st.sampled_from(_TEXTS),
    st.text(max_size=40),  # odd Unicode of any kind (hypothesis leaves out lone surrogates, as the gateway does)
)
_VALUES = st.one_of(
    ADVERSARIAL_TEXT,
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(ADVERSARIAL_TEXT, max_size=3),
    st.dictionaries(st.sampled_from(["token", "secret", "note"]), ADVERSARIAL_TEXT, max_size=2),
)
# Keys that merely sound secret hide nothing; only `api_key` of publish_post is declared so.
_EXTRA_KEYS = st.sampled_from(
    ["max_tokens", "api_secret", "token", "password", "note", "k\u200bey", "ke\u202ey", "`x`"]
)
EXTRAS = st.dictionaries(_EXTRA_KEYS, _VALUES, max_size=3)


@st.composite
def agent_arguments(draw: st.DrawFn, tool: str) -> dict[str, Any]:
    if tool == IMAGE_TOOL:
        base: dict[str, Any] = {
            "prompt": draw(ADVERSARIAL_TEXT),
            "provider": "openai",
            "model": "gpt-image-1",
            "n": draw(st.integers(1, 6)),
        }
    else:
        base = {"text": draw(ADVERSARIAL_TEXT), "copies": draw(st.integers(1, 5)), "api_key": draw(ADVERSARIAL_TEXT)}
    return {**draw(EXTRAS), **base}


@st.composite
def edit_patch(draw: st.DrawFn, tool: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """An approver's edit: a JSON merge patch on what they were shown."""
    patch: dict[str, Any] = {}
    if tool == IMAGE_TOOL:
        patch["n"] = draw(st.integers(1, 6))
    else:
        patch["copies"] = draw(st.integers(1, 5))
    if draw(st.booleans()):
        patch["prompt" if tool == IMAGE_TOOL else "text"] = draw(ADVERSARIAL_TEXT)
    extras = [k for k in current if k not in ("prompt", "provider", "model", "n", "text", "copies", "api_key")]
    if bool(extras) and draw(st.booleans()):
        patch[draw(st.sampled_from(sorted(extras)))] = None  # removes it
    if tool == POST_TOOL and draw(st.integers(0, 4)) == 0:
        patch["api_key"] = draw(ADVERSARIAL_TEXT)
    if tool == IMAGE_TOOL and draw(st.integers(0, 5)) == 0:
        patch["directory"] = "/srv/out"  # the policy denies this: the edit must be refused, changing nothing
    return patch


def merged(original: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 as the approver means it (the test's own, not the service's)."""
    out = dict(original)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            below = out.get(key)
            out[key] = merged(below if isinstance(below, Mapping) else {}, value)
        else:
            out[key] = value
    return out


def canonical(value: Any) -> str:
    """Exact equality, types included (1, 1.0 and true differ)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- reading a view back -------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<[^<>\"]*>")


def _as_json(text: str) -> tuple[str, int]:
    """A view's text as JSON: placeholders outside strings become null, and the escapes of characters beyond the
    BMP (`\\U000e0041`) become JSON's surrogate pairs. Returns the JSON and how many placeholders it had."""
    out: list[str] = []
    placeholders = 0
    i, in_string = 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                if text[i + 1] == "U":
                    code = int(text[i + 2 : i + 10], 16) - 0x10000
                    out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
                    i += 10
                    continue
                out.append(text[i : i + 2])
                i += 2
                continue
            in_string = ch != '"'
        elif ch == '"':
            in_string = True
        elif ch == "<":
            found = _PLACEHOLDER.match(text, i)
            assert found is not None, f"a bare '<' outside a string in a view: {text[i : i + 40]!r}"
            out.append("null")
            placeholders += 1
            i = found.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out), placeholders


def _set(root: dict[str, Any], pointer: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = root
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    assert (node[int(last)] if isinstance(node, list) else node[last]) is None, f"no placeholder at {pointer}"
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def seen_arguments(view: ArgumentsView, revealed: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a decider knows from `view`: every value read from its text, each masked secret from its
    audited reveal (`revealed`, by pointer), and each blob as the media it shows (type, size and digest; the test
    maps those bytes back to the one value it sent with them)."""
    assert view.full, "a decider is shown the full view"
    arguments: dict[str, Any] = {}
    for f in view.fields:
        key = json.loads('"' + _as_json(f.key)[0] + '"')
        body, placeholders = _as_json(f.text)
        arguments[key] = json.loads(body)
        assert placeholders == sum(1 for p in (*view.masked, *(b.pointer for b in view.blobs)) if _under(p, f.pointer))
    for pointer in view.masked:
        _set(arguments, pointer, revealed[pointer])
    for blob in view.blobs:
        matches = [v for v, b64 in MEDIA.items() if _digest(b64) == blob.sha256]
        assert len(matches) == 1, f"a blob the agent never sent: {blob}"
        _set(arguments, blob.pointer, matches[0])
    return arguments


def _under(pointer: str, top: str) -> bool:
    return pointer == top or pointer.startswith(top + "/")


def _digest(b64: str) -> str:
    return hashlib.sha256(base64.b64decode(b64)).hexdigest()
