"""All SQL about policy versions."""

from __future__ import annotations

from sqlmodel import Session, col, select

from service.policy_versions.models import PolicyVersion


class PolicyVersionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def current(self) -> PolicyVersion | None:
        return self.session.exec(select(PolicyVersion).order_by(col(PolicyVersion.id).desc()).limit(1)).first()

    def latest_file_import(self) -> PolicyVersion | None:
        return self.session.exec(
            select(PolicyVersion)
            .where(col(PolicyVersion.file_digest).is_not(None))
            .order_by(col(PolicyVersion.id).desc())
            .limit(1)
        ).first()

    def get(self, version_id: int) -> PolicyVersion | None:
        return self.session.get(PolicyVersion, version_id)

    def history(self, limit: int) -> list[PolicyVersion]:
        return list(self.session.exec(select(PolicyVersion).order_by(col(PolicyVersion.id).desc()).limit(limit)).all())

    def add(self, version: PolicyVersion) -> PolicyVersion:
        self.session.add(version)
        self.session.flush()
        return version
