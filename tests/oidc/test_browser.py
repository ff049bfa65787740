"""In real headless Chromium: an approver signs in through the OpenID provider and approves a held call."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.gateway.harness import RunningGateway
from tests.oidc.provider import LoopbackProvider
from tests.webui.conftest import DEAR, AgentCall, approve_on_its_page


def test_an_approver_signs_in_through_the_provider_and_approves_a_held_call(
    page: Page, gw: RunningGateway, corp: LoopbackProvider
) -> None:
    corp.set_accounts(
        {"sub-ana": {"email": "ana@example.com", "email_verified": True, "groups": ["airlock-approvers"]}}
    )
    page.goto(gw.base_url + "/")
    assert "/login" in page.url  # the queue needs a session
    page.click("text=Sign in with Corp SSO")
    page.fill("input[name=login]", "sub-ana")  # at the provider's own page
    page.click("#provider-sign-in")
    page.wait_for_url(gw.base_url + "/")
    expect(page.locator(".user-name")).to_have_text("corp-ana")
    expect(page.locator(".who .role")).to_have_text("approver")
    agent = AgentCall(gw, "generate_image", DEAR).start()
    row = page.locator("tr[data-request-id]").first
    expect(row).to_be_visible(timeout=15_000)
    request_id = row.get_attribute("data-request-id")
    assert request_id is not None
    assert gw.upstream_calls("generate_image") == []
    approve_on_its_page(page, gw, request_id)
    result = agent.wait()
    assert not result.is_error
    assert [block.type for block in result.content] == ["image", "image"]
    assert len(gw.upstream_calls("generate_image")) == 1
    expect(page.locator(".timeline")).to_contain_text("Approved by corp-ana")
