"""Each main page with realistic content, in Chromium: it renders, and its screenshot is saved (to docs/screenshots
with AIRLOCK_SCREENSHOTS=docs/screenshots, which is how the pictures in README.md and docs/webui.md are made)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.gateway.harness import RunningGateway
from tests.webui.conftest import DEAR, AgentCall, approve_on_its_page, call_now, save_screenshot, sign_in


def test_screenshots_of_the_main_pages(page: Page, gw: RunningGateway, tmp_path: Path) -> None:
    page.goto(gw.base_url + "/login")
    save_screenshot(page, "login", tmp_path)
    sign_in(page, gw, "root")
    assert not call_now(gw, "get_model_capabilities", {}).is_error
    assert call_now(gw, "generate_image", {**DEAR, "directory": "/srv/www"}).is_error
    first = AgentCall(gw, "generate_image", {**DEAR, "prompt": "a lighthouse at dawn, watercolour", "n": 1}).start()
    expect(page.locator("tr[data-request-id]")).to_have_count(1)
    first_id = str(page.locator("tr[data-request-id]").first.get_attribute("data-request-id"))
    approve_on_its_page(page, gw, first_id)
    assert not first.wait().is_error
    page.goto(gw.base_url + "/")
    waiting = [
        AgentCall(gw, "generate_image", {**DEAR, "prompt": prompt, "n": n}).start()
        for prompt, n in (("four lighthouses in a storm", 4), ("a product shot of a teapot", 2), ("city at night", 3))
    ]
    expect(page.locator("tr[data-request-id]")).to_have_count(3)
    page.keyboard.press("j")
    save_screenshot(page, "queue", tmp_path)
    page.goto(f"{gw.base_url}/requests/{first_id}")
    expect(page.locator("img.thumb")).to_have_count(1)
    save_screenshot(page, "request", tmp_path)
    page.goto(gw.base_url + "/history")
    expect(page.locator("tr[data-outcome]").first).to_be_visible()
    save_screenshot(page, "history", tmp_path)
    page.goto(
        gw.base_url + "/rules/simulate?grant=agent&tool=generate_image"
        "&arguments=%7B%22prompt%22%3A%22x%22%2C%22provider%22%3A%22openai%22%2C%22model%22%3A%22gpt-image-1%22%2C%22n%22%3A4%7D"
    )
    expect(page.locator("#simulation-outcome")).to_have_text("hold")
    save_screenshot(page, "rules", tmp_path)
    for name, path in (("grants", "/grants"), ("dashboard", "/dashboard"), ("users", "/users")):
        page.goto(gw.base_url + path)
        expect(page.locator("h1")).to_have_text(name.capitalize())
        save_screenshot(page, name, tmp_path)
    page.goto(gw.base_url + "/")
    page.locator("#check-all").check()
    page.fill("#batch-form input[name=reason]", "screenshots done")
    page.click("#batch-form button[value=reject]")
    for agent in waiting:
        assert agent.wait().is_error
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        f"{n}.png" for n in ("login", "queue", "request", "history", "rules", "grants", "dashboard", "users")
    )
