"""One error hierarchy for every domain.

Services raise these; HTTP handlers, MCP handlers and the CLI render them. Nothing else turns into a 4xx.

    AirlockError (500)
    ├── InvalidInput (400)
    │   ├── ConfigInvalid        a configuration file or setting is wrong
    │   ├── PolicyInvalid (422)  a policy document is refused, with every problem listed
    │   └── TooLarge (413)       a request body over its limit, refused before it is all read
    ├── NotAuthenticated (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    │   └── AlreadyExists
    ├── TooManyAttempts (429)    sign-in refused for a while after repeated failures
    └── Unavailable (503)        a store we depend on cannot be reached: fail closed
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AirlockError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(AirlockError):
    status_code = 400


class ConfigInvalid(InvalidInput):
    pass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where (JSON Pointer, and the line when known) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "/"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class PolicyInvalid(InvalidInput):
    status_code = 422

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        summary = "; ".join(str(p) for p in self.problems[:3])
        more = f" (and {count - 3} more)" if count > 3 else ""
        super().__init__(f"policy refused, {count} problem{'s' if count != 1 else ''}: {summary}{more}")


class TooLarge(InvalidInput):
    status_code = 413


class NotAuthenticated(AirlockError):
    status_code = 401


class Forbidden(AirlockError):
    status_code = 403


class NotFound(AirlockError):
    status_code = 404


class Conflict(AirlockError):
    status_code = 409


class AlreadyExists(Conflict):
    pass


class TooManyAttempts(AirlockError):
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(AirlockError):
    status_code = 503
