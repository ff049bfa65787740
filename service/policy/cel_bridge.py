"""CEL expressions (`when:` and cost `expr:`), compiled once, fed only the variables they reference.

Handing a program just the variables it names is what keeps an evaluation at a few microseconds: the
CEL binding converts every value it is given, and the full context costs about ten times more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cel

VARIABLES = ("args", "tool", "grant", "cost", "counters", "now")


class CelError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class CelProgram:
    source: str
    program: Any
    variables: tuple[str, ...]

    def evaluate(self, resolve: Callable[[str], Any]) -> Any:
        try:
            return self.program.execute({name: resolve(name) for name in self.variables})
        except KeyError as exc:
            raise CelError(f"no such field {exc}") from None
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise CelError(str(exc).split(". ")[0]) from None

    def evaluate_bool(self, resolve: Callable[[str], Any]) -> bool:
        result = self.evaluate(resolve)
        if not isinstance(result, bool):
            raise CelError(f"expected true or false, got {type(result).__name__}")
        return result


def compile_cel(source: str) -> CelProgram:
    """Raises ValueError with the compiler's message."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError("a CEL expression must be a non-empty string")
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"CEL does not compile: {_first_line(exc)}") from None
    references = program.references()
    names = list(references["variables"])
    # Comprehension macros (exists, all, map, filter) bind their own names, which show up as variables;
    # only a program without macros can be checked for unknown names.
    uses_macros = any(f.startswith("@") for f in references["functions"])
    unknown = [n for n in names if n not in VARIABLES]
    if unknown and not uses_macros:
        raise ValueError(f"unknown variable {unknown[0]!r}; CEL sees {', '.join(VARIABLES)}")
    return CelProgram(source, program, tuple(n for n in names if n in VARIABLES))


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.replace("\n", " ").strip()[:300]


def without_nulls(value: Mapping[str, Any]) -> dict[str, Any]:
    """JSON null counts as absent, so `has(args.n)` is false for `"n": null`."""
    return {k: (without_nulls(v) if isinstance(v, Mapping) else v) for k, v in value.items() if v is not None}
