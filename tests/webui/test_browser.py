"""The web UI in real headless Chromium, with held calls made by a real MCP client through a real Airlock."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
from mcp.types import TextContent
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.gateway.harness import RunningGateway
from tests.webui.conftest import DEAR, AgentCall, approve_on_its_page, call_now, offers_no_approve, sign_in


def held(gw: RunningGateway, page: Page, arguments: dict[str, object] | None = None) -> tuple[AgentCall, str]:
    """An agent's call that the policy holds, and its row once it appeared in the open queue page."""
    agent = AgentCall(gw, "generate_image", arguments or DEAR).start()
    row = page.locator("tr[data-request-id]").first
    expect(row).to_be_visible(timeout=15_000)
    request_id = row.get_attribute("data-request-id")
    assert request_id is not None
    return agent, request_id


def test_sign_in_with_a_wrong_password_then_the_right_one(page: Page, gw: RunningGateway) -> None:
    page.goto(gw.base_url + "/")
    assert "/login" in page.url  # the queue needs a session
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("wrong username or password")
    sign_in(page, gw, "ana")
    expect(page.locator(".user-name")).to_have_text("ana")
    cookie = next(c for c in page.context.cookies() if c["name"] == "airlock_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # the demo is plain http
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(gw.base_url + "/history")
    assert "/login" in page.url


def test_a_held_call_appears_live_and_an_approval_gives_the_agent_its_images(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.evaluate("window.__same_page = true")
    started = time.monotonic()
    agent, request_id = held(gw, page)
    arrived = time.monotonic() - started
    assert page.evaluate("window.__same_page") is True  # no reload: the row came over the WebSocket
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    expect(row.locator(".tool")).to_have_text("generate_image")
    expect(row).to_contain_text("agent")
    expect(page).to_have_title(re.compile(r"^\(1\) Queue"))
    assert gw.upstream_calls("generate_image") == []
    offers_no_approve(row)
    approve_on_its_page(page.context.new_page(), gw, request_id)  # in a second tab: this one stays on the queue
    expect(row).to_have_count(0)  # it leaves the queue live, without a reload
    assert page.evaluate("window.__same_page") is True
    result = agent.wait()
    assert not result.is_error
    assert [block.type for block in result.content] == ["image", "image"]
    assert len(gw.upstream_calls("generate_image")) == 1
    page.goto(f"{gw.base_url}/requests/{request_id}")
    expect(page.locator("[data-status]")).to_have_text("succeeded")
    expect(page.locator(".timeline")).to_contain_text("Approved by ana")
    expect(page.locator(".timeline .channel").first).to_have_text("via web")
    expect(page.locator("#cost-breakdown")).to_have_text(
        re.compile(r"^2 \u00d7 \$0\.\d+ \(gpt-image-1, .* quality, square\)$")
    )
    expect(page.locator("img.thumb")).to_have_count(2)
    assert page.locator("img.thumb").first.evaluate("img => img.naturalWidth") > 0
    assert arrived < 15


def test_a_rejection_with_a_reason_reaches_the_agent(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    agent, request_id = held(gw, page)
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    row.locator("summary").click()
    row.locator("input[name=reason]").fill("too dear for a test")
    row.locator("form.reject-form button").click()
    expect(row).to_have_count(0)
    result = agent.wait()
    assert result.is_error
    text = result.content[0]
    assert isinstance(text, TextContent)
    assert text.text.startswith("[REJECTED] by ana: too dear for a test")
    assert gw.upstream_calls() == []
    token = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    page.goto(f"{gw.base_url}/requests/{request_id}")
    digest = page.locator("#arguments-digest").text_content()  # what an approve form opened earlier would carry
    late = page.request.post(
        f"{gw.base_url}/requests/{request_id}/approve",
        form={"csrf_token": token or "", "arguments_digest": digest or ""},
        max_redirects=0,
    )
    assert late.status == 303  # a late second decision is news on the request's page, not an error page
    page.goto(gw.base_url + late.headers["location"])
    expect(page.locator(".flash")).to_contain_text(f"R-{request_id} was already rejected by ana")
    expect(page.locator("[data-status]")).to_have_text("rejected")


def test_edit_and_approve_checks_the_schema_then_runs_the_edited_call(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    agent, request_id = held(gw, page)
    page.goto(f"{gw.base_url}/requests/{request_id}#edit")
    editor = page.locator("#edit-arguments")
    editor.fill('{"prompt": "one lighthouse", "provider": "openai", "model": "gpt-image-1", "n": "many"}')
    page.click("#edit-approve")
    expect(page.locator("#edit-error")).to_contain_text("do not fit the tool")
    expect(page.locator("[data-status]")).to_have_text("pending")
    editor.fill('{"prompt": "one lighthouse", "provider": "openai", "model": "gpt-image-1", "n": 1}')
    page.click("#edit-approve")
    result = agent.wait()
    assert [block.type for block in result.content] == ["image"]
    assert gw.upstream_calls("generate_image")[0]["arguments"]["n"] == 1
    page.goto(f"{gw.base_url}/requests/{request_id}")
    arguments = page.locator("#arguments").locator("xpath=..")
    expect(arguments.locator("h2")).to_have_text("Arguments (as edited: this is what runs)")
    expect(arguments.locator('[data-pointer="/n"] pre')).to_have_text("1")
    expect(arguments.locator('[data-pointer="/prompt"] pre')).to_have_text('"one lighthouse"')
    expect(page.locator(".timeline")).to_contain_text("Arguments edited by ana")
    expect(page.locator(".timeline")).to_contain_text("with edited arguments")


def test_filter_the_history_and_export_csv(page: Page, gw: RunningGateway) -> None:
    assert not call_now(gw, "get_model_capabilities", {}).is_error
    denied = call_now(gw, "generate_image", {**DEAR, "directory": "/etc"})
    assert denied.is_error
    sign_in(page, gw, "vic", "/history")
    outcomes = set(page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.outcome)"))
    assert {"allow", "deny"} <= outcomes
    page.select_option("select[name=outcome]", "deny")
    page.click("#history-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*outcome=deny.*"))
    shown = page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.outcome)")
    assert shown == ["deny"]
    expect(page.locator("tbody")).to_contain_text("Saving images to server folders is not allowed.")
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [r["outcome"] for r in rows] == ["deny"]
    assert rows[0]["tool"] == "generate_image"


def test_a_policy_edit_with_an_error_is_refused_at_its_line_then_the_fix_is_saved(
    page: Page, gw: RunningGateway
) -> None:
    sign_in(page, gw, "root", "/rules")
    source = page.locator("#policy-source")
    original = source.input_value()
    broken = original.replace("max: 30,", "max: lots,")
    assert broken != original
    source.fill(broken)
    problem = page.locator("#policy-problems .problem").first
    expect(problem).to_contain_text("/tools/generate_image/limits/0/max")  # checked as you type
    line = int(problem.get_attribute("data-line") or 0)
    assert "max: lots" in broken.splitlines()[line - 1]
    page.fill("input[name=comment]", "try a limit")
    page.click("#policy-save")
    expect(page.locator("#policy-status")).to_contain_text("nothing was changed")
    assert page.locator("tr[data-version]").count() == 1
    page.locator("#policy-source").fill(original.replace("max: 30,", "max: 12,"))
    expect(page.locator("#policy-status")).to_contain_text("No problems")
    page.fill("input[name=comment]", "a tighter rate")
    page.click("#policy-save")
    expect(page.locator(".flash")).to_contain_text("Policy version 2 is now in force")
    expect(page.locator(".tool-rule", has_text="generate_image")).to_contain_text("at most 12 calls per minute")
    rule = gw.state.gateway.policy.current().policy.rule_for("generate_image")
    assert rule is not None and rule.limits[0].max_display == 12  # in force at once in this process
    assert page.locator("tr[data-version]").count() == 2


def test_simulate_a_call(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "vic", "/rules")
    page.select_option("select[name=grant]", "agent")
    page.fill("input[name=tool]", "generate_image")
    page.fill(
        "#simulate textarea[name=arguments]", '{"prompt": "x", "provider": "openai", "model": "gpt-image-1", "n": 4}'
    )
    page.click("#simulate button[type=submit]")
    expect(page.locator("#simulation-outcome")).to_have_text("hold")
    expect(page.locator("#simulation")).to_contain_text("/tools/generate_image/require_approval")
    expect(page.locator("#simulation-cost")).to_have_text(re.compile(r"^\$\d"))
    page.fill(
        "#simulate textarea[name=arguments]",
        '{"prompt": "x", "provider": "openai", "model": "gpt-image-1", "directory": "/tmp"}',
    )
    page.click("#simulate button[type=submit]")
    expect(page.locator("#simulation-outcome")).to_have_text("deny")
    assert gw.upstream_calls() == []


def test_rollback_to_an_earlier_version(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "root", "/rules")
    original = page.locator("#policy-source").input_value()
    page.locator("#policy-source").fill(original.replace("cost.usd > 0.10", "cost.usd > 0.50"))
    page.fill("input[name=comment]", "hold less")
    page.click("#policy-save")
    expect(page.locator(".flash")).to_contain_text("version 2")
    first = page.locator('tr[data-version="1"]')
    first.locator("summary").click()
    first.locator("input[name=comment]").fill("back to the reviewed policy")
    first.locator("button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("version 3 (a copy of 1)")
    assert page.locator("#policy-source").input_value() == original
    page.goto(f"{gw.base_url}/rules/versions/2")
    expect(page.locator("pre.diff .add")).to_have_text(['+      when: "cost.usd > 0.50"'])
    expect(page.locator("pre.diff .del")).to_have_text(['-      when: "cost.usd > 0.10"'])


def test_a_viewer_sees_the_queue_but_cannot_approve(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "vic")
    agent, request_id = held(gw, page)
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    expect(row.locator("button")).to_have_count(0)
    token = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    answer = page.request.post(
        f"{gw.base_url}/requests/{request_id}/approve",
        form={"csrf_token": token or ""},
        headers={"Accept": "application/json"},
    )
    assert answer.status == 403
    page.goto(f"{gw.base_url}/requests/{request_id}")
    expect(page.locator("[data-status]")).to_have_text("pending")
    expect(page.locator("#approve-button")).to_have_count(0)
    assert gw.upstream_calls() == []
    page.context.close()
    del agent  # its call stays held until the gateway stops


def test_a_post_without_its_csrf_token_is_refused(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    agent, request_id = held(gw, page)
    answer = page.request.post(f"{gw.base_url}/requests/{request_id}/approve", form={"comment": "sneaky"})
    assert answer.status == 403
    assert "CSRF" in answer.text()
    forged = page.request.post(f"{gw.base_url}/requests/{request_id}/approve", form={"csrf_token": "forged"})
    assert forged.status == 403
    page.reload()
    expect(page.locator(f'tr[data-request-id="{request_id}"]')).to_have_count(1)
    assert gw.upstream_calls() == []
    del agent


def test_an_argument_with_markup_renders_as_text(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    page.on("dialog", lambda dialog: dialog.dismiss())
    evil = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"
    agent, request_id = held(gw, page, {**DEAR, "prompt": evil})
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    expect(row.locator(".args-peek")).to_contain_text("<script>window.__pwned = 1</script>")
    assert page.evaluate("window.__pwned") is None
    assert row.locator("script, img").count() == 0
    page.goto(f"{gw.base_url}/requests/{request_id}")
    expect(page.locator("#arguments")).to_contain_text(evil)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#arguments script, #arguments img").count() == 0
    row_reject = page.locator("#reject-button")
    page.fill("input[name=reason]", "no markup please")
    row_reject.click()
    assert agent.wait().is_error


# Replays off: the same call after the revocation would otherwise get the stored result of the first one (a replay,
# docs/architecture.md#replay) instead of being held again where the queue can show it.
@pytest.mark.parametrize("gw", [{"hold": {"replay_window": 0}}], indirect=True)
def test_approve_and_remember_then_revoke_the_standing_approval(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    agent, request_id = held(gw, page)
    page.goto(f"{gw.base_url}/requests/{request_id}")
    page.select_option("select[name=remember]", "arguments")
    page.select_option("select[name=duration]", "8h")
    page.click("#approve-button")
    assert not agent.wait().is_error
    expect(page.locator(".timeline")).to_contain_text("and remembered")
    again = call_now(gw, "generate_image", DEAR)  # the same call now passes without asking
    assert not again.is_error and len(gw.upstream_calls("generate_image")) == 2
    page.goto(f"{gw.base_url}/approvals/standing")
    row = page.locator("tr[data-standing-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("generate_image")
    expect(row).to_contain_text("these arguments")
    row.locator("button").click()
    expect(page.locator(".flash")).to_contain_text("is revoked")
    expect(page.locator("tr[data-standing-id]")).to_have_count(0)
    page.goto(gw.base_url + "/")
    agent, _ = held(gw, page)  # held again: the standing approval is gone
    page.locator("tr[data-request-id] summary").click()
    page.locator("tr[data-request-id] input[name=reason]").fill("enough")
    page.locator("tr[data-request-id] form.reject-form button").click()
    assert agent.wait().is_error


def test_keyboard_shortcuts_and_a_batch_decision(page: Page, gw: RunningGateway) -> None:
    sign_in(page, gw, "ana")
    first, _ = held(gw, page, {**DEAR, "prompt": "first"})
    second = AgentCall(gw, "generate_image", {**DEAR, "prompt": "second"}).start()
    expect(page.locator("tr[data-request-id]")).to_have_count(2)
    expect(page).to_have_title(re.compile(r"^\(2\) Queue"))
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    expect(page.locator("tr.selected")).to_have_count(1)
    expect(page.locator("tr.selected .args-peek")).to_contain_text("second")  # newest first
    second_id = page.locator("tr.selected").get_attribute("data-request-id")
    page.keyboard.press("a")  # opens it: approving is done on its page, where every value is shown
    page.wait_for_url(f"{gw.base_url}/requests/{second_id}")
    expect(page.locator('[data-pointer="/prompt"]')).to_contain_text('"second"')
    approve_on_its_page(page, gw, str(second_id))
    assert [b.type for b in second.wait().content] == ["image", "image"]
    page.goto(gw.base_url + "/")
    expect(page.locator("tr[data-request-id]")).to_have_count(1)
    expect(page).to_have_title(re.compile(r"^\(1\) Queue"))
    third = AgentCall(gw, "generate_image", {**DEAR, "prompt": "third"}).start()
    expect(page.locator("tr[data-request-id]")).to_have_count(2)
    expect(page.locator("#batch-form button")).to_have_text(["Reject ticked"])  # a batch only rejects
    page.keyboard.press("?")
    expect(page.locator("#help")).to_contain_text("approving is done on its page")
    page.keyboard.press("Escape")
    page.locator("#check-all").check()
    expect(page.locator("#batch-count")).to_have_text("2 ticked to reject")
    page.fill("#batch-form input[name=reason]", "batch says no")
    page.click("#batch-form button[value=reject]")
    expect(page.locator(".flash")).to_contain_text("Rejected")
    for agent in (first, third):
        result = agent.wait()
        assert result.is_error
        text = result.content[0]
        assert isinstance(text, TextContent) and "batch says no" in text.text
    expect(page.locator("tr[data-request-id]")).to_have_count(0)
    expect(page.locator("#queue-empty")).to_be_visible()


def test_the_queue_reconnects_by_itself_and_catches_up(page: Page, gw: RunningGateway) -> None:
    sockets: list[WebSocketRoute] = []

    def through(route: WebSocketRoute) -> None:
        route.connect_to_server()
        sockets.append(route)

    page.route_web_socket(re.compile(r".*/ws/queue$"), through)
    sign_in(page, gw, "ana")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.evaluate("window.__same_page = true")
    sockets[0].close()  # the connection drops (a restart, a proxy timeout)
    agent = AgentCall(gw, "generate_image", DEAR).start()  # held while the page is not connected
    expect(page.locator("tr[data-request-id]")).to_have_count(1)  # caught up after reconnecting
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    assert len(sockets) >= 2 and page.evaluate("window.__same_page") is True
    row_id = page.locator("tr[data-request-id]").get_attribute("data-request-id")
    row = page.locator("tr[data-request-id]")
    offers_no_approve(row)
    row.locator("a[data-open]").click()
    approve_on_its_page(page, gw, str(row_id))
    assert not agent.wait().is_error


NOTIFICATIONS_SPY = """
window.__notes = [];
window.__hidden = true;
Object.defineProperty(document, "hidden", { get: () => window.__hidden });
function Spy(title, options) { window.__notes.push([title, options && options.body]); }
Spy.permission = "granted";
Spy.requestPermission = () => Promise.resolve("granted");
window.Notification = Spy;
"""


def test_a_desktop_notification_names_the_tool_when_the_queue_is_in_a_background_tab(
    page: Page, gw: RunningGateway
) -> None:
    # The browser's own notification window cannot be seen headless: a spy stands in for the Notification API, with
    # the permission granted, and the tab reports itself hidden, as a queue open in a background tab does.
    page.add_init_script(NOTIFICATIONS_SPY)
    sign_in(page, gw, "ana")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    agent, _ = held(gw, page)
    page.wait_for_function("window.__notes.length > 0", timeout=5_000)
    assert page.evaluate("window.__notes") == [["Airlock: a call waits for you", "generate_image"]]
    page.evaluate("window.__hidden = false")  # someone looking at the queue needs no notification
    second = AgentCall(gw, "generate_image", {**DEAR, "prompt": "a second lighthouse"}).start()
    expect(page.locator("tr[data-request-id]")).to_have_count(2, timeout=15_000)
    assert len(page.evaluate("window.__notes")) == 1
    csrf = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value") or ""
    for row_id in page.locator("tr[data-request-id]").evaluate_all("rows => rows.map(r => r.dataset.requestId)"):
        page.request.post(f"{gw.base_url}/requests/{row_id}/reject", form={"csrf_token": csrf, "reason": "test over"})
    agent.wait()
    second.wait()
