"""The policy document: its schema, and reading it from YAML or JSON with line numbers for every problem.

The schema is a superset of PolicyLayer's (version, default, hide, all_tools.limits, tools.{require, deny_if,
limits}, on_deny), so a PolicyLayer policy loads unchanged. Airlock adds `action`, glob tool names, CEL `when`,
`cost`, `require_approval`, soft limits (`over: require_approval`) and budgets (`increment_from`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.errors import PolicyInvalid, Problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionSpec(_Strict):
    path: str
    op: str
    value: Any = None


class DenyIfSpec(_Strict):
    conditions: list[ConditionSpec] | None = Field(None, min_length=1)
    when: str | None = None
    on_deny: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> DenyIfSpec:
        if (self.conditions is None) == (self.when is None):
            raise ValueError("give either conditions or when")
        return self


class LimitSpec(_Strict):
    counter: str = Field(min_length=1)
    window: str | int
    max: float = Field(ge=0)
    scope: Literal["grant", "session", "tool", "global"] = "grant"
    increment_from: str | None = None
    over: Literal["deny", "require_approval"] = "deny"
    on_deny: str | None = None


class CostSpec(_Strict):
    estimator: str | None = None
    expr: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CostSpec:
        if (self.estimator is None) == (self.expr is None):
            raise ValueError("give either estimator or expr")
        return self


class ApproversSpec(_Strict):
    # Absent roles mean "approver" only when the rule names nobody else: `{users: [zoe]}` means zoe (and admins).
    roles: list[str] | None = None
    users: list[str] = []
    slack_users: list[str] = []
    slack_groups: list[str] = []


class RequireApprovalSpec(_Strict):
    when: str | None = None
    conditions: list[ConditionSpec] | None = None
    approvers: ApproversSpec = ApproversSpec()
    channel: str | None = None
    timeout: str | int = "15m"
    on_timeout: Literal["reject"] = "reject"
    quorum: int = Field(1, ge=1)
    self_approval: bool = False
    slack: bool = True
    reason: str | None = None


class ToolRuleSpec(_Strict):
    action: Literal["allow", "deny", "require_approval"] | None = None
    on_deny: str | None = None
    require: list[ConditionSpec] = []
    deny_if: list[DenyIfSpec] = []
    limits: list[LimitSpec] = []
    cost: CostSpec | None = None
    require_approval: RequireApprovalSpec | None = None
    description: str | None = None
    redact_keys: list[str] = []
    """Argument keys whose values approvers see masked (revealable, audited) and logs never show."""


class AllToolsSpec(_Strict):
    require: list[ConditionSpec] = []
    deny_if: list[DenyIfSpec] = []
    limits: list[LimitSpec] = []


class PolicyDocument(_Strict):
    version: str
    description: str | None = None
    # PolicyLayer/Intercept treat a missing default as allow; a policy that means to be strict says deny.
    default: Literal["allow", "deny", "require_approval"] = "allow"
    hide: list[str] = []
    redact_keys: list[str] = []
    """As a tool's redact_keys, for every tool."""
    all_tools: AllToolsSpec = AllToolsSpec()
    tools: dict[str, ToolRuleSpec] = {}

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        if str(value) != "1" or isinstance(value, bool):
            raise ValueError('version must be "1"')
        return "1"

    @field_validator("hide")
    @classmethod
    def _hide(cls, value: list[str]) -> list[str]:
        if any(not entry for entry in value):
            raise ValueError("hide entries must be non-empty tool names or patterns")
        if len(set(value)) != len(value):
            raise ValueError("hide lists a tool twice")
        return value


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads on/off/yes/no as booleans; in a policy those are tool or value names."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

Path = tuple[str | int, ...]


def pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 JSON Pointer."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


class SourceMap:
    """Line numbers of every node of a YAML document, looked up by path."""

    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.duplicates: list[tuple[Path, int]] = []

    def line_for(self, path: Path) -> int | None:
        probe = tuple(path)
        while True:
            if probe in self.lines:
                return self.lines[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def record(self, node: yaml.Node, path: Path) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    self.duplicates.append(((*path, key), key_node.start_mark.line + 1))
                seen.add(key)
                self.record(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record(item, (*path, index))


def parse_source(text: str) -> tuple[Any, SourceMap]:
    """YAML or JSON text to plain data; raises PolicyInvalid on a syntax error."""
    source_map = SourceMap()
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # refuses characters YAML does not allow (a NUL) already here
        node = loader.get_single_node()
        if node is not None:
            source_map.record(node, ())
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        try:
            data = json.loads(text)
        except ValueError:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyInvalid([Problem("", f"not valid YAML or JSON: {problem}", line)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    problems = [Problem(pointer(p), "this key appears twice", line) for p, line in source_map.duplicates]
    if problems:
        raise PolicyInvalid(problems)
    return data, source_map


def check_document(data: Any, source_map: SourceMap | None = None) -> tuple[PolicyDocument, list[Problem]]:
    """Schema check that goes on past the first bad part.

    Returns a document with the bad parts left out, so the compiler can still report what is wrong in the
    good parts, and every schema problem with its path and line.
    """
    source_map = source_map or SourceMap()
    if not isinstance(data, dict):
        return PolicyDocument(version="1"), [Problem("", "a policy must be a mapping (an object) at the top level", 1)]
    problems: list[Problem] = []
    raw_tools = data.get("tools", {})
    tools: dict[str, ToolRuleSpec] = {}
    if isinstance(raw_tools, dict):
        for name, raw_rule in raw_tools.items():
            try:
                tools[str(name)] = ToolRuleSpec.model_validate(raw_rule if raw_rule is not None else {})
            except ValidationError as exc:
                problems += _problems(exc, ("tools", str(name)), source_map)
        top = {k: v for k, v in data.items() if k != "tools"}
    else:
        top = data
    try:
        document = PolicyDocument.model_validate(top)
    except ValidationError as exc:
        problems += _problems(exc, (), source_map)
        document = PolicyDocument(version="1")
    return document.model_copy(update={"tools": tools}), problems


def validate_document(data: Any, source_map: SourceMap | None = None) -> PolicyDocument:
    """Schema check; raises PolicyInvalid listing every problem with its path and line."""
    document, problems = check_document(data, source_map)
    if problems:
        raise PolicyInvalid(problems)
    return document


def _problems(exc: ValidationError, prefix: Path, source_map: SourceMap) -> list[Problem]:
    out = []
    for error in exc.errors():
        loc = prefix + tuple(part for part in error["loc"] if not str(part).startswith("function-after"))
        out.append(Problem(pointer(loc), _message(error), source_map.line_for(loc)))
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
