"""The one rendering of a request's arguments for people: the web pages, REST, the CLI and the Slack card use it.

What you approve is what you see (docs/architecture.md#what-you-approve-is-what-you-see). A person who may decide a
request sees every value in full:
- masked only where the tool's inputSchema (`writeOnly`, `format: password`) or the operator (`redact_keys`)
  declared a parameter secret; a key name the agent chose hides nothing. A masked value is revealable (audited);
- summarised only when it really is binary: a data: URL whose bytes are not text, or base64 whose decoded bytes
  start with a known image or audio signature. Text stays text, however long or base64-like;
- with control, bidirectional and zero-width characters escaped (`\\u202e`), ANSI escapes included.
People who may not decide get the logged view (`arguments.redact`), the conservative one of the logs.

Placeholders for masked values and blobs are written as <…>, outside any JSON string, so no value an agent sends
can look like one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.arguments import arguments_digest, redact
from service.errors import InvalidInput

MASKED = "<masked: declared secret>"
# Leading bytes of the media a decider may be shown as a blob (and open, for images).
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),  # after RIFF....
    (b"WAVE", 8, "audio/wav"),
    (b"ID3", 0, "audio/mpeg"),
    (b"\xff\xfb", 0, "audio/mpeg"),
    (b"\xff\xf3", 0, "audio/mpeg"),
    (b"\xff\xf2", 0, "audio/mpeg"),
    (b"OggS", 0, "audio/ogg"),
    (b"fLaC", 0, "audio/flac"),
)
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_BLOB_MIN_CHARS = 64  # shorter base64 is shown as it is: a summary would not be shorter
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)", re.IGNORECASE | re.DOTALL)
# Kept as they are: a prompt's line breaks and tabs are part of what people read.
_PLAIN_CONTROLS = frozenset("\n\t")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
# Printable to Python, yet shown as nothing: Unicode's default-ignorable code points outside the categories above
# (combining grapheme joiner, Hangul fillers, Khmer inherent vowels, variation selectors, ...) and the blank braille
# pattern. Two keys differing only by one of them would look the same.
_BLANK_PRINTABLES = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]"
)


def escape_invisible(text: str) -> str:
    """Control, format (bidi overrides, zero-width), separator and unassigned characters as `\\uXXXX`, so a
    value cannot reorder, hide or recolour what is around it (ESC of an ANSI sequence included)."""
    if text.isprintable() and not _BLANK_PRINTABLES.search(text):  # the common case, at C speed
        return text
    out = []
    for ch in text:
        if ch not in _PLAIN_CONTROLS and (
            (unicodedata.category(ch) in _INVISIBLE_CATEGORIES and ch != " ") or _BLANK_PRINTABLES.match(ch)
        ):
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Secrets:
    """The parameters declared secret for a request's tool, captured when it was held."""

    paths: frozenset[tuple[str, ...]] = frozenset()
    """From the inputSchema: property names from the root; "*" stands for any item of an array."""
    keys: frozenset[str] = frozenset()
    """The operator's `redact_keys` (lower-cased), matched on a key's exact name at any depth."""

    def to_json(self) -> dict[str, Any]:
        return {"paths": sorted(list(p) for p in self.paths), "keys": sorted(self.keys)}

    @classmethod
    def from_json(cls, data: Any) -> Secrets:
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            frozenset(tuple(str(part) for part in p) for p in data.get("paths", ()) if isinstance(p, list)),
            frozenset(str(k) for k in data.get("keys", ())),
        )

    def covers(self, path: Sequence[str | int]) -> bool:
        if path and isinstance(path[-1], str) and path[-1].lower() in self.keys:
            return True
        return tuple("*" if isinstance(part, int) else part for part in path) in self.paths


def declared_secrets(input_schema: Mapping[str, Any] | None, redact_keys: Sequence[str] = ()) -> Secrets:
    paths = frozenset(_schema_secret_paths(input_schema, (), 0)) if isinstance(input_schema, Mapping) else frozenset()
    return Secrets(paths, frozenset(k.lower() for k in redact_keys))


def _schema_secret_paths(schema: Mapping[str, Any], path: tuple[str, ...], depth: int) -> Iterator[tuple[str, ...]]:
    if depth > 32:  # an upstream's schema is not ours; a cycle or a monster must not hang a hold
        return
    if path and (schema.get("writeOnly") is True or schema.get("format") == "password"):
        yield path
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            if isinstance(sub, Mapping):
                yield from _schema_secret_paths(sub, (*path, str(name)), depth + 1)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _schema_secret_paths(items, (*path, "*"), depth + 1)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(combinator) or ():
            if isinstance(sub, Mapping):
                yield from _schema_secret_paths(sub, path, depth + 1)


@dataclass(frozen=True)
class Blob:
    pointer: str
    media_type: str
    size: int
    """Decoded bytes."""
    sha256: str

    @property
    def placeholder(self) -> str:
        return f"<{self.media_type}, {self.size:,} bytes, sha256:{self.sha256[:16]}>"

    @property
    def is_image(self) -> bool:
        return self.media_type in IMAGE_TYPES


def decode_media(value: str) -> tuple[str, bytes] | None:
    """(media type, bytes) when `value` really is binary; None for anything that is, or may be read as, text."""
    decoded = _decoded_base64(value)
    if decoded is None:
        return None
    data_url, data = decoded
    media_type = _media_type(data, data_url)
    return (media_type, data) if media_type is not None else None


def _decoded_base64(value: str) -> tuple[re.Match[str] | None, bytes] | None:
    """The data URL (if it is one) and the bytes of a long base64 value that holds no readable text."""
    if len(value) < _BLOB_MIN_CHARS:
        return None
    data_url = _DATA_URL.fullmatch(value)
    payload = data_url.group(3) if data_url else value
    if not _BASE64.fullmatch(payload):
        return None
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    return None if _carries_text(data) else (data_url, data)


def _media_type(data: bytes, data_url: re.Match[str] | None) -> str | None:
    """What the bytes' signature says, or a data URL's declared type that is not text; None when neither holds."""
    for signature, offset, media_type in _SIGNATURES:
        if data.startswith(signature, offset):
            return media_type if media_type not in IMAGE_TYPES or _decodes_as_image(data) else None
    if data_url is None:
        return None
    declared = (data_url.group(1) or "application/octet-stream").lower()
    if declared.startswith("text/") or "charset=" in data_url.group(2).lower():
        return None
    return declared


# Compressed media has a run of 40 printable ASCII bytes about once in 10^17 positions; text has little else. Such a
# run means words an upstream may read, so the value is shown as it is (NULs dropped first: UTF-16 text has them).
_TEXT_RUN = re.compile(rb"[\x20-\x7e\t\r\n]{40}")


def _carries_text(data: bytes) -> bool:
    return _TEXT_RUN.search(data.replace(b"\x00", b"")) is not None


def _decodes_as_image(data: bytes) -> bool:
    """What a signature claims, checked by Pillow: the file must parse as that image (PNG chunks and their CRCs)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


@dataclass(frozen=True)
class ArgumentField:
    """One top-level argument as a person sees it: its value as JSON text, escaped, in full."""

    key: str
    pointer: str
    text: str
    masked: bool = False


@dataclass(frozen=True)
class ArgumentsView:
    digest: str
    """The digest of the arguments under review; a decision taken from this view carries it."""
    full: bool
    """True for a decider's view; False for the logged view shown to people who may not decide."""
    fields: tuple[ArgumentField, ...]
    masked: tuple[str, ...] = ()
    """JSON pointers of the values masked as declared secrets."""
    blobs: tuple[Blob, ...] = field(default=())

    @property
    def chars(self) -> int:
        return sum(len(f.text) for f in self.fields)

    def text(self) -> str:
        """The whole view as one JSON-like text (placeholders outside strings), for the CLI and Slack."""
        if not self.fields:
            return "{}"
        lines = [f'  "{f.key}": {_indent(f.text)}' for f in self.fields]
        return "{\n" + ",\n".join(lines) + "\n}"


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


def render(arguments: Mapping[str, Any], secrets: Secrets, *, full: bool) -> ArgumentsView:
    """`full` for a person who may decide (`approvals.deciders.decider_refusal`); else the logged view."""
    digest = arguments_digest(arguments)
    if not full:
        logged = logged_view(arguments, secrets)
        fields = tuple(ArgumentField(_key(k), _pointer([k]), escape_invisible(_dumps(v))) for k, v in logged.items())
        return ArgumentsView(digest, False, fields)
    masked: list[str] = []
    blobs: list[Blob] = []
    shown: list[ArgumentField] = []
    for key, value in arguments.items():
        path: list[str | int] = [str(key)]
        text = _render_value(value, path, secrets, masked, blobs)
        shown.append(ArgumentField(_key(key), _pointer(path), escape_invisible(text), secrets.covers(path)))
    return ArgumentsView(digest, True, tuple(shown), tuple(masked), tuple(blobs))


def logged_view(arguments: Mapping[str, Any], secrets: Secrets) -> dict[str, Any]:
    """The conservative view of logs and of people who may not decide, honouring the operator's redact_keys."""
    result: dict[str, Any] = redact(arguments, max_string=500, extra_keys=secrets.keys)
    return result


def _render_value(
    value: Any, path: list[str | int], secrets: Secrets, masked: list[str], blobs: list[Blob], indent: int = 0
) -> str:
    if path and secrets.covers(path):
        masked.append(_pointer(path))
        return MASKED
    if isinstance(value, Mapping):
        return _render_mapping(value, path, secrets, masked, blobs, indent)
    if isinstance(value, list):
        return _render_list(value, path, secrets, masked, blobs, indent)
    if isinstance(value, str):
        media = decode_media(value)
        if media is not None:
            blob = Blob(_pointer(path), media[0], len(media[1]), hashlib.sha256(media[1]).hexdigest())
            blobs.append(blob)
            return blob.placeholder
    return _dumps(value)


def _render_mapping(
    value: Mapping[Any, Any], path: list[str | int], secrets: Secrets, masked: list[str], blobs: list[Blob], indent: int
) -> str:
    if not value:
        return "{}"
    pad = "  " * (indent + 1)
    parts = [
        f"{pad}{json.dumps(str(k), ensure_ascii=False)}: "
        + _render_value(v, [*path, str(k)], secrets, masked, blobs, indent + 1)
        for k, v in value.items()
    ]
    return "{\n" + ",\n".join(parts) + "\n" + "  " * indent + "}"


def _render_list(
    value: list[Any], path: list[str | int], secrets: Secrets, masked: list[str], blobs: list[Blob], indent: int
) -> str:
    if not value:
        return "[]"
    pad = "  " * (indent + 1)
    parts = [pad + _render_value(v, [*path, i], secrets, masked, blobs, indent + 1) for i, v in enumerate(value)]
    return "[\n" + ",\n".join(parts) + "\n" + "  " * indent + "]"


def _key(key: object) -> str:
    """A key as it appears between quotes, escaped like the values."""
    return escape_invisible(json.dumps(str(key), ensure_ascii=False)[1:-1])


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _pointer(path: Sequence[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def value_at(arguments: Mapping[str, Any], pointer: str) -> Any:
    """The value a JSON pointer names; KeyError when there is none."""
    node: Any = arguments
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(pointer)
    return node


def masked_copy(value: Any, secrets: Secrets, path: tuple[str | int, ...] = ()) -> Any:
    """The exact values, with the declared secrets replaced by the masked marker (REST's view for deciders)."""
    if path and secrets.covers(path):
        return MASKED
    if isinstance(value, Mapping):
        return {str(k): masked_copy(v, secrets, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_copy(v, secrets, (*path, i)) for i, v in enumerate(value)]
    return value


def secrets_of(approval: Mapping[str, Any]) -> Secrets:
    """The secrets a request kept when it was held (in its approval spec)."""
    return Secrets.from_json(approval.get("secrets"))


def patch_from_edit(shown: Mapping[str, Any], edited: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch from the values a person was shown (`masked_copy`) to what they submitted: only what
    they changed. A masked value left as its marker is not in it, so the secret it stands for runs unchanged."""
    patch: dict[str, Any] = {}
    for key, value in edited.items():
        before = shown.get(key, _ABSENT)
        if value == before and type(value) is type(before):
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = patch_from_edit(before, value)
            if inner:
                patch[key] = inner
        else:
            if _holds_marker(value):
                # Whole values replace what was there: the marker would run in place of a secret nobody saw.
                raise InvalidInput(
                    f"{key!r} holds a masked secret: reveal it before editing that value, or leave the value as it was"
                )
            patch[key] = value
    for key in shown:
        if key not in edited:
            patch[key] = None
    return patch


def _holds_marker(value: Any) -> bool:
    if isinstance(value, str):
        return value == MASKED
    if isinstance(value, Mapping):
        return any(_holds_marker(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_marker(v) for v in value)
    return False


_ABSENT = object()
