"""Block and mute in the demo: posts vanish at once (in the user's other tabs too), the
blocked side is told it can't interact, and a mute hides posts for the muter only."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser.demo_page import WAIT_MS, DemoPage
from tests.hub.serverproc import ServerProcess


def _follow_each_other(one: DemoPage, other: DemoPage, one_user: str, other_user: str) -> None:
    one.follow_suggested(other_user)
    other.follow_suggested(one_user)


def test_a_block_hides_posts_in_every_tab_and_refuses_the_blocked(
    browser: Browser, dev_hub: ServerProcess
) -> None:
    base = f"http://127.0.0.1:{dev_hub.port}/"
    alice, mallory = DemoPage(browser, base), DemoPage(browser, base)
    alice.sign_in("alice")
    mallory.sign_in("mallory")
    alice.compose("Alice says hi")
    mallory.compose("Mallory was here")
    _follow_each_other(alice, mallory, "alice", "mallory")
    expect(alice.post("Mallory was here")).to_have_count(1, timeout=WAIT_MS)
    target = mallory.post("Alice says hi")
    expect(target).to_have_count(1, timeout=WAIT_MS)
    other_tab = DemoPage(browser, base)
    other_tab.sign_in("alice")
    expect(other_tab.post("Mallory was here")).to_have_count(1, timeout=WAIT_MS)

    block = alice.post("Mallory was here").get_by_role("button", name="Block @mallory")
    block.focus()  # a real button: keyboard users reach it too
    block.click()
    alice.post("Mallory was here").get_by_role("button", name="Confirm block @mallory").click()
    for tab in (alice, other_tab):
        expect(tab.post("Mallory was here")).to_have_count(0, timeout=WAIT_MS)
        hidden = tab.page.locator("#hidden")
        expect(hidden.get_by_role("button", name="Unblock @mallory")).to_be_visible(timeout=WAIT_MS)
        expect(tab.page.locator("#following")).not_to_contain_text("@mallory")

    # Mallory is not told, still sees alice's post, and every interaction is refused.
    target.get_by_role("button", name="Like").click()
    toast = mallory.page.locator(".toast")
    expect(toast).to_have_text("You can't interact with @alice.", timeout=WAIT_MS)
    mallory.page.evaluate("document.querySelectorAll('.toast').forEach((t) => t.remove())")
    target.get_by_role("button", name="Reply").click()
    mallory.page.get_by_label("Reply to this post").fill("Let me in")
    target.get_by_role("button", name="Reply", exact=True).last.click()
    expect(toast).to_have_text("You can't interact with @alice.", timeout=WAIT_MS)
    expect(target.locator(".likes")).to_have_text("0")

    other_tab.page.locator("#hidden").get_by_role("button", name="Unblock @mallory").click()
    for tab in (alice, other_tab):
        expect(tab.page.locator("#hidden")).to_have_text("Nobody.", timeout=WAIT_MS)
    for tab in (alice, other_tab, mallory):
        assert tab.errors == [] and tab.not_reloaded()


def test_a_mute_hides_posts_for_the_muter_only(browser: Browser, dev_hub: ServerProcess) -> None:
    base = f"http://127.0.0.1:{dev_hub.port}/"
    dora, eve = DemoPage(browser, base), DemoPage(browser, base)
    dora.sign_in("dora")
    eve.sign_in("eve")
    eve.compose("Eve talks a lot")
    dora.compose("Dora listens")
    _follow_each_other(dora, eve, "dora", "eve")
    expect(dora.post("Eve talks a lot")).to_have_count(1, timeout=WAIT_MS)

    dora.post("Eve talks a lot").get_by_role("button", name="Mute @eve", exact=True).click()
    choice = dora.page.get_by_role("button", name="Mute @eve for 1 hour")
    expect(choice).to_be_focused()
    choice.click()
    expect(dora.post("Eve talks a lot")).to_have_count(0, timeout=WAIT_MS)
    muted = dora.page.locator("#hidden")
    expect(muted.locator("time")).to_contain_text("until", timeout=WAIT_MS)
    eve.compose("Eve keeps talking")
    dora.compose("Dora's marker")  # delivered after eve's post: that one was hidden
    expect(dora.post("Eve keeps talking")).to_have_count(0)
    expect(eve.post("Eve talks a lot")).to_have_count(1)  # eve sees her own posts ...
    expect(eve.post("Dora's marker")).to_have_count(1, timeout=WAIT_MS)  # ... and dora's

    muted.get_by_role("button", name="Unmute @eve").click()
    expect(dora.post("Eve keeps talking")).to_have_count(1, timeout=WAIT_MS)
    expect(muted).to_have_text("Nobody.", timeout=WAIT_MS)
    assert dora.errors == [] and eve.errors == []
