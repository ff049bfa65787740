"""The Slack integration's SQL on both engines: cards owed, cards lagging behind their request, users by e-mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from service.approvals.schemas import Verdict
from service.db.engine import unit_of_work
from service.security import TokenHasher
from service.slack.repository import SlackRepository
from service.users.models import Role
from service.users.service import create_user
from tests.approvals.helpers import ADMIN, decide, held


def test_cards_owed_and_lagging(engine: Engine, hasher: TokenHasher) -> None:
    first, _ = held(engine, hasher)
    second, _ = held(engine, hasher, prompt="another")
    third, _ = held(engine, hasher, prompt="a third")
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        assert [r.id for r in repo.pending_without_cards()] == [first, second, third]
        repo.add_missing_cards(first, ["#a", "U0ANA"])
        repo.add_missing_cards(first, ["#a"])  # twice is once
        repo.add_missing_cards(second, ["#a"])
        repo.add_missing_cards(third, ["#a"])
        for request_id, shown in ((second, "pending:0:0"), (third, "pending:0:0")):
            card = repo.card(request_id, "#a")
            assert card is not None
            card.channel_id, card.ts, card.shown = "C1", f"1.{request_id}", shown
            repo.save(card)
    decide(engine, second, ADMIN)
    decide(engine, third, ADMIN, Verdict.REJECT, reason="no")
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        third_card = repo.card(third, "#a")
        assert third_card is not None
        third_card.shown = "rejected:0:0"  # the card already shows the final state
        repo.save(third_card)
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        assert repo.pending_without_cards() == []
        assert [c.target for c in repo.cards(first)] == ["#a", "U0ANA"]
        lagging = {(card.request_id, card.target, status) for card, status in repo.lagging_cards()}
        assert lagging == {(first, "#a", "pending"), (first, "U0ANA", "pending"), (second, "#a", "approved")}


def test_users_by_slack_id_and_by_email_ignoring_case(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        create_user(session, hasher, username="ana", role=Role.APPROVER, actor="t", slack_user_id="U0ANA")
        create_user(session, hasher, username="eve", role=Role.APPROVER, actor="t", email="Eve@Example.com")
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        found = repo.user_by_slack_id("U0ANA")
        assert found is not None and found.username == "ana"
        by_email = repo.user_by_email("eve@example.COM")
        assert by_email is not None and by_email.username == "eve"
        assert repo.slack_ids_of(["ana", "eve", "nobody"]) == ["U0ANA"]


def test_a_card_is_claimed_for_its_post_by_one_sender_at_a_time(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    now = datetime.now(UTC)
    later = now + timedelta(seconds=60)
    with unit_of_work(engine) as session:
        SlackRepository(session).add_missing_cards(request_id, ["#a"])
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        assert repo.claim_send(request_id, "#a", "replica-a", image=False, now=now, until=later)
        assert not repo.claim_send(request_id, "#a", "replica-b", image=False, now=now, until=later)
        assert repo.claim_send(request_id, "#a", "replica-a", image=False, now=now, until=later)  # its own retry
        # A sender that died: once its lease ran out, another replica's catch-up may post the card.
        assert repo.claim_send(
            request_id, "#a", "replica-b", image=False, now=later + timedelta(seconds=1), until=later
        )
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        card = repo.card(request_id, "#a")
        assert card is not None
        card.channel_id, card.ts, card.sending_by, card.sending_until = "C1", "1.1", None, None
        repo.save(card)
    with unit_of_work(engine) as session:
        repo = SlackRepository(session)
        assert not repo.claim_send(request_id, "#a", "replica-a", image=False, now=now, until=later)  # posted
        assert repo.claim_send(request_id, "#a", "replica-a", image=True, now=now, until=later)  # its image is not
        assert not repo.claim_send(request_id, "#a", "replica-b", image=True, now=now, until=later)
