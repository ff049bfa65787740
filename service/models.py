"""Every table of the service, registered on one metadata. This is where the app (service/app.py) and the migrations
(alembic/env.py) meet: the core (service/db/) names no domain, and only this module knows all of them, Slack's
included."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

import service.approvals.models
import service.audit.models
import service.grants.models
import service.oauth.models
import service.oidc.models
import service.policy_versions.models
import service.slack.models
import service.users.models  # noqa: F401

metadata: MetaData = SQLModel.metadata
"""The complete metadata: what Alembic compares the database with."""
