"""The database holds the policy versions and the newest one rules.

The config's policy file is imported as a new version whenever its digest changes, so an edit made in the
web UI survives a restart until the file itself changes again. A refused document never becomes a version,
so the policy in force stays in force.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from sqlmodel import Session

from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import CHANGES, announce
from service.errors import InvalidInput, NotFound
from service.policy import CompiledPolicy, EstimatorRegistry, load_policy
from service.policy_versions.models import PolicyVersion
from service.policy_versions.repository import PolicyVersionRepository

MAX_POLICY_BYTES = 1_000_000


def digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def read_policy_file(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise InvalidInput(f"policy file {path} is larger than {MAX_POLICY_BYTES} bytes")
        return path.read_text("utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read policy file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"policy file {path} is not UTF-8 text") from None


def current(session: Session) -> PolicyVersion | None:
    return PolicyVersionRepository(session).current()


def apply(
    session: Session,
    source: str,
    registry: EstimatorRegistry,
    *,
    origin: str,
    actor: str,
    comment: str,
    file_digest: str | None = None,
) -> PolicyVersion:
    """Validate and store a new version; raises PolicyInvalid (and stores nothing) when it is refused."""
    if not comment.strip():
        raise InvalidInput("say why the policy changes: a comment is required")
    load_policy(source, registry)
    repo = PolicyVersionRepository(session)
    previous = repo.current()
    version = repo.add(
        PolicyVersion(
            source=source,
            digest=digest(source),
            origin=origin,
            file_digest=file_digest,
            created_by=actor,
            comment=comment.strip(),
        )
    )
    record(
        session,
        AuditRecord(
            kind="admin",
            action="policy.applied",
            actor=actor,
            details={
                "version": version.id,
                "previous": previous.id if previous else None,
                "origin": origin,
                "comment": version.comment,
                "digest": version.digest,
            },
        ),
    )
    announce(session, CHANGES, {"what": "policy", "version": version.id})  # other replicas load it at once
    return version


def import_file_if_changed(
    session: Session, path: Path, registry: EstimatorRegistry, *, actor: str = "system"
) -> PolicyVersion | None:
    """Import the config's policy file when its content differs from the last import; None when unchanged."""
    source = read_policy_file(path)
    file_digest = digest(source)
    last = PolicyVersionRepository(session).latest_file_import()
    if last is not None and last.file_digest == file_digest:
        return None
    return apply(
        session,
        source,
        registry,
        origin="file",
        actor=actor,
        comment=f"imported from {path.name}",
        file_digest=file_digest,
    )


def rollback(
    session: Session, version_id: int, registry: EstimatorRegistry, *, actor: str, comment: str
) -> PolicyVersion:
    target = get(session, version_id)
    return apply(session, target.source, registry, origin="rollback", actor=actor, comment=comment)


def get(session: Session, version_id: int) -> PolicyVersion:
    found = PolicyVersionRepository(session).get(version_id)
    if found is None:
        raise NotFound(f"no policy version {version_id}")
    return found


def history(session: Session, limit: int = 50) -> list[PolicyVersion]:
    return PolicyVersionRepository(session).history(limit)


def diff(old: str, new: str, *, old_name: str = "before", new_name: str = "after") -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_name, tofile=new_name
    )
    return "".join(lines)


def compiled_current(
    session: Session, registry: EstimatorRegistry, policy_file: Path | None
) -> tuple[CompiledPolicy, PolicyVersion | None]:
    """The policy in force: the newest stored version, or the config's file when nothing is stored yet."""
    stored = current(session)
    if stored is not None:
        return load_policy(stored.source, registry), stored
    if policy_file is None:
        raise InvalidInput("no policy is stored yet and the config names no policy file")
    return load_policy(read_policy_file(policy_file), registry), None
