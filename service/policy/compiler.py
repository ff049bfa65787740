"""From a validated document to the structures evaluate() walks: conditions, CEL programs and windows built once."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from service.durations import parse_duration
from service.errors import PolicyInvalid, Problem
from service.policy.cel_bridge import CelProgram, compile_cel
from service.policy.conditions import ROOTS, Condition, compile_condition
from service.policy.cost import CostEstimator, EstimatorRegistry, ExpressionEstimator
from service.policy.decision import ApprovalSpec, Approvers
from service.policy.document import (
    ConditionSpec,
    DenyIfSpec,
    LimitSpec,
    PolicyDocument,
    SourceMap,
    check_document,
    parse_source,
    pointer,
    validate_document,
)
from service.policy.windows import Window, parse_window

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class CompiledCheck:
    """One deny_if entry, one require condition, or a require_approval test."""

    pointer: str
    conditions: tuple[Condition, ...] = ()
    cel: CelProgram | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    pointer: str
    counter: str
    window: Window
    max_units: int
    """The max in counting units: calls, or micro-units of `increment_from` for a budget."""
    max_display: float
    scope: str
    increment_from: tuple[str, ...] | None
    soft: bool
    on_deny: str | None

    @property
    def budget(self) -> bool:
        return self.increment_from is not None


@dataclass(frozen=True, slots=True)
class CompiledApproval:
    pointer: str
    spec: ApprovalSpec
    when: CompiledCheck | None
    reason: str


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    pointer: str
    action: str
    on_deny: str | None = None
    require: tuple[CompiledCheck, ...] = ()
    deny_if: tuple[CompiledCheck, ...] = ()
    limits: tuple[CompiledLimit, ...] = ()
    cost: CostEstimator | None = None
    cost_pointer: str | None = None
    approval: CompiledApproval | None = None
    all_limits: tuple[CompiledLimit, ...] = ()
    """all_tools limits followed by this rule's own, joined once at load instead of on every call."""


@dataclass
class CompiledPolicy:
    document: PolicyDocument
    default: str
    all_tools: CompiledRule
    exact: dict[str, CompiledRule]
    globs: list[CompiledRule]
    """Longest pattern first: among globs the longest wins, and document order breaks ties."""
    hide_exact: frozenset[str]
    hide_globs: tuple[str, ...]
    hide_pointers: dict[str, str]
    default_approval: ApprovalSpec
    _resolved: dict[str, CompiledRule | None] = field(default_factory=dict)
    _hidden: dict[str, str | None] = field(default_factory=dict)

    def rule_for(self, tool: str) -> CompiledRule | None:
        try:
            return self._resolved[tool]
        except KeyError:
            pass
        rule = self.exact.get(tool)
        if rule is None:
            rule = next((g for g in self.globs if fnmatch.fnmatchcase(tool, g.name)), None)
        if len(self._resolved) < 10_000:  # tool names come from upstreams; bounded so a flood cannot grow it
            self._resolved[tool] = rule
        return rule

    def redact_keys_for(self, tool: str) -> tuple[str, ...]:
        """The operator's secret argument keys for this tool: the global list and its rule's own."""
        rule = self.rule_for(tool)
        own = (
            self.document.tools[rule.name].redact_keys if rule is not None and rule.name in self.document.tools else []
        )
        return (*self.document.redact_keys, *own)

    def hidden_by(self, tool: str) -> str | None:
        """The pointer of the hide entry that hides this tool, if any."""
        try:
            return self._hidden[tool]
        except KeyError:
            pass
        found: str | None = None
        if tool in self.hide_exact:
            found = self.hide_pointers[tool]
        else:
            found = next((self.hide_pointers[p] for p in self.hide_globs if fnmatch.fnmatchcase(tool, p)), None)
        if len(self._hidden) < 10_000:
            self._hidden[tool] = found
        return found


def is_glob(name: str) -> bool:
    """A key with `*` or `?` is a pattern, where `[...]` is a character class (and `[*]`, `[?]`, `[[]` match those
    characters literally). Any other key is an exact tool name, brackets included: `db.query[prod]` is that tool."""
    return "*" in name or "?" in name


class _Compiler:
    def __init__(self, registry: EstimatorRegistry, source_map: SourceMap) -> None:
        self.registry = registry
        self.source_map = source_map
        self.problems: list[Problem] = []

    def problem(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(pointer(path), message, self.source_map.line_for(path)))

    def condition(self, spec: ConditionSpec, path: tuple[str | int, ...]) -> Condition | None:
        try:
            return compile_condition(spec.path, spec.op, spec.value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def conditions(self, specs: Iterable[ConditionSpec], path: tuple[str | int, ...]) -> tuple[Condition, ...]:
        compiled = [self.condition(spec, (*path, i)) for i, spec in enumerate(specs)]
        return tuple(c for c in compiled if c is not None)

    def cel(self, source: str, path: tuple[str | int, ...]) -> CelProgram | None:
        try:
            return compile_cel(source)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None

    def deny_if(self, specs: list[DenyIfSpec], path: tuple[str | int, ...]) -> tuple[CompiledCheck, ...]:
        checks = []
        for i, spec in enumerate(specs):
            here = (*path, i)
            if spec.when is not None:
                checks.append(
                    CompiledCheck(pointer(here), cel=self.cel(spec.when, (*here, "when")), message=spec.on_deny)
                )
            else:
                conds = self.conditions(spec.conditions or [], (*here, "conditions"))
                checks.append(CompiledCheck(pointer(here), conditions=conds, message=spec.on_deny))
        return tuple(checks)

    def require(self, specs: list[ConditionSpec], path: tuple[str | int, ...]) -> tuple[CompiledCheck, ...]:
        checks = []
        for i, spec in enumerate(specs):
            cond = self.condition(spec, (*path, i))
            if cond is not None:
                checks.append(CompiledCheck(pointer((*path, i)), conditions=(cond,)))
        return tuple(checks)

    def limits(self, specs: list[LimitSpec], path: tuple[str | int, ...]) -> tuple[CompiledLimit, ...]:
        out = []
        for i, spec in enumerate(specs):
            here = (*path, i)
            try:
                window = parse_window(spec.window)
            except ValueError as exc:
                self.problem((*here, "window"), str(exc))
                continue
            increment: tuple[str, ...] | None = None
            if spec.increment_from is not None:
                increment = tuple(spec.increment_from.split("."))
                if increment[0] not in ROOTS or len(increment) < 2 or not all(increment):
                    self.problem((*here, "increment_from"), "must be a path such as cost.usd or args.n")
                    continue
                max_units = round(spec.max * MICRO)
            else:
                if spec.max != int(spec.max):
                    self.problem((*here, "max"), "a count limit needs a whole number; add increment_from for a budget")
                    continue
                max_units = int(spec.max)
            out.append(
                CompiledLimit(
                    pointer=pointer(here),
                    counter=spec.counter,
                    window=window,
                    max_units=max_units,
                    max_display=spec.max,
                    scope=spec.scope,
                    increment_from=increment,
                    soft=spec.over == "require_approval",
                    on_deny=spec.on_deny,
                )
            )
        return tuple(out)

    def cost(self, rule: Any, path: tuple[str | int, ...]) -> CostEstimator | None:
        if rule.cost is None:
            return None
        if rule.cost.estimator is not None:
            estimator = self.registry.get(rule.cost.estimator)
            if estimator is None:
                known = ", ".join(self.registry.names())
                self.problem((*path, "cost", "estimator"), f"unknown estimator {rule.cost.estimator!r}; known: {known}")
            return estimator
        program = self.cel(rule.cost.expr, (*path, "cost", "expr"))
        if program is None:
            return None
        if any(v not in ("args", "tool") for v in program.variables):
            self.problem((*path, "cost", "expr"), "a cost expression sees only args and tool")
            return None
        return ExpressionEstimator(program)

    def approval(self, rule: Any, path: tuple[str | int, ...]) -> CompiledApproval | None:
        spec = rule.require_approval
        if spec is None:
            if rule.action == "require_approval":
                return CompiledApproval(pointer((*path, "action")), ApprovalSpec(), None, "this tool needs approval")
            return None
        here = (*path, "require_approval")
        try:
            timeout = parse_duration(spec.timeout)
        except ValueError as exc:
            self.problem((*here, "timeout"), str(exc))
            return None
        if spec.when is not None and spec.conditions is not None:
            self.problem(here, "give when or conditions, not both")
        check: CompiledCheck | None = None
        reason = spec.reason
        if spec.when is not None:
            check = CompiledCheck(pointer((*here, "when")), cel=self.cel(spec.when, (*here, "when")))
            reason = reason or f"needs approval when {spec.when}"
        elif spec.conditions is not None:
            check = CompiledCheck(pointer(here), conditions=self.conditions(spec.conditions, (*here, "conditions")))
            reason = reason or "needs approval: its conditions hold"
        named = spec.approvers.users or spec.approvers.slack_users or spec.approvers.slack_groups
        roles = spec.approvers.roles if spec.approvers.roles is not None else ([] if named else ["approver"])
        approvers = Approvers(
            roles=tuple(roles),
            users=tuple(spec.approvers.users),
            slack_users=tuple(spec.approvers.slack_users),
            slack_groups=tuple(spec.approvers.slack_groups),
        )
        approval = ApprovalSpec(
            approvers=approvers,
            timeout=timeout,
            on_timeout=spec.on_timeout,
            quorum=spec.quorum,
            self_approval=spec.self_approval,
            channel=spec.channel,
            slack=spec.slack,
        )
        return CompiledApproval(pointer(here), approval, check, reason or "this tool needs approval")

    def rule(self, name: str, spec: Any, path: tuple[str | int, ...]) -> CompiledRule:
        return CompiledRule(
            name=name,
            pointer=pointer(path),
            action=spec.action or ("require_approval" if spec.require_approval else "allow"),
            on_deny=spec.on_deny,
            require=self.require(spec.require, (*path, "require")),
            deny_if=self.deny_if(spec.deny_if, (*path, "deny_if")),
            limits=self.limits(spec.limits, (*path, "limits")),
            cost=self.cost(spec, path),
            cost_pointer=pointer((*path, "cost")) if spec.cost is not None else None,
            approval=self.approval(spec, path),
        )


def compile_policy(
    document: PolicyDocument, registry: EstimatorRegistry, source_map: SourceMap | None = None
) -> CompiledPolicy:
    compiler = _Compiler(registry, source_map or SourceMap())
    all_tools = CompiledRule(
        name="*",
        pointer="/all_tools",
        action="allow",
        require=compiler.require(document.all_tools.require, ("all_tools", "require")),
        deny_if=compiler.deny_if(document.all_tools.deny_if, ("all_tools", "deny_if")),
        limits=compiler.limits(document.all_tools.limits, ("all_tools", "limits")),
    )
    all_tools = replace(all_tools, all_limits=all_tools.limits)
    exact: dict[str, CompiledRule] = {}
    globs: list[tuple[int, int, CompiledRule]] = []
    for order, (name, spec) in enumerate(document.tools.items()):
        if not name:
            compiler.problem(("tools",), "a tool name must not be empty")
            continue
        if spec.action == "deny" and spec.require_approval is not None:
            compiler.problem(("tools", name, "require_approval"), "a tool with action deny is never held")
        rule = compiler.rule(name, spec, ("tools", name))
        rule = replace(rule, all_limits=all_tools.limits + rule.limits)
        if is_glob(name):
            globs.append((-len(name), order, rule))
        else:
            exact[name] = rule
    globs.sort(key=lambda entry: (entry[0], entry[1]))
    hide_pointers = {name: pointer(("hide", i)) for i, name in enumerate(document.hide)}
    if compiler.problems:
        raise PolicyInvalid(compiler.problems)
    return CompiledPolicy(
        document=document,
        default=document.default,
        all_tools=all_tools,
        exact=exact,
        globs=[entry[2] for entry in globs],
        hide_exact=frozenset(n for n in document.hide if not is_glob(n)),
        hide_globs=tuple(n for n in document.hide if is_glob(n)),
        hide_pointers=hide_pointers,
        default_approval=ApprovalSpec(),
    )


def load_policy(text: str, registry: EstimatorRegistry) -> CompiledPolicy:
    """Parse, validate and compile; raises PolicyInvalid with every problem found, schema and semantics alike."""
    data, source_map = parse_source(text)
    document, problems = check_document(data, source_map)
    try:
        compiled = compile_policy(document, registry, source_map)
    except PolicyInvalid as exc:
        problems += exc.problems
    if problems:
        raise PolicyInvalid(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return compiled


def load_policy_data(data: Mapping[str, Any], registry: EstimatorRegistry) -> CompiledPolicy:
    return compile_policy(validate_document(dict(data)), registry)
