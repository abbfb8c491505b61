"""Two browser windows, two users: follows, posts, edits, likes and deletes appear live."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.demo_page import WAIT_MS, DemoPage
from tests.hub.serverproc import ServerProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def test_two_users_interact_live(browser: Browser, dev_hub: ServerProcess) -> None:
    base = f"http://127.0.0.1:{dev_hub.port}/"
    alice, bob = DemoPage(browser, base), DemoPage(browser, base)
    alice.sign_in("alice")
    bob.sign_in("bob")

    bob.compose("Hello from bob! #hubbub")
    alice.follow_suggested("bob")
    expect(alice.post("Hello from bob!")).to_have_count(1, timeout=WAIT_MS)
    expect(alice.page.locator('#following .avatar[data-user="bob"]')).to_have_class(
        "avatar online", timeout=WAIT_MS
    )

    bob.compose("Fresh news, straight from the hub")
    news = bob.post("Fresh news")
    live = alice.post("Fresh news")
    expect(live).to_have_count(1, timeout=WAIT_MS)

    news.get_by_role("button", name="Edit").click()
    bob.page.get_by_label("Edit your post").fill("Fresh news, edited in place")
    news.get_by_role("button", name="Edit", exact=True).last.click()
    expect(live.locator(".text")).to_have_text("Fresh news, edited in place", timeout=WAIT_MS)
    expect(live.locator(".edited")).to_be_visible()

    live.get_by_role("button", name="Like").click()
    expect(news.locator(".likes")).to_have_text("1", timeout=WAIT_MS)
    expect(live.get_by_role("button", name="Like")).to_have_attribute("aria-pressed", "true")
    expect(bob.page.locator("#badge")).to_have_text("2", timeout=WAIT_MS)  # a follow, a like

    alice.compose("Welcome @bob, nice to see you here #hello")
    reply_target = alice.post("Hello from bob!")
    reply_target.get_by_role("button", name="Reply").click()
    alice.page.get_by_label("Reply to this post").fill("Replying live, no reload needed")
    reply_target.get_by_role("button", name="Reply", exact=True).last.click()
    expect(bob.post("Replying live")).to_have_count(0)  # bob does not follow alice
    expect(alice.post("Replying live")).to_have_count(1, timeout=WAIT_MS)
    carol = DemoPage(browser, base)
    carol.sign_in("carol")
    carol.compose("Anyone up for a #hubbub meetup on Friday?")
    expect(alice.page.locator("#suggest")).to_contain_text("@carol", timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    alice.page.evaluate("window.scrollTo(0, 0)")
    alice.page.screenshot(path=str(ARTIFACTS / "demo.png"), animations="disabled")

    doomed = bob.compose("This one will be deleted")
    expect(alice.post("will be deleted")).to_have_count(1, timeout=WAIT_MS)
    doomed.get_by_role("button", name="Delete").click()
    doomed.get_by_role("button", name="Confirm delete").click()
    expect(alice.post("will be deleted")).to_have_count(0, timeout=WAIT_MS)
    expect(bob.post("will be deleted")).to_have_count(0, timeout=WAIT_MS)

    assert alice.not_reloaded() and bob.not_reloaded()
    assert alice.errors == [] and bob.errors == []


def test_a_like_is_remembered_by_the_hub_across_windows(
    browser: Browser, dev_hub: ServerProcess
) -> None:
    base = f"http://127.0.0.1:{dev_hub.port}/"
    dora, eve = DemoPage(browser, base), DemoPage(browser, base)
    dora.sign_in("dora")
    eve.sign_in("eve")
    eve.compose("Like this one, dora")
    dora.follow_suggested("eve")
    seen = dora.post("Like this one")
    expect(seen).to_have_count(1, timeout=WAIT_MS)
    seen.get_by_role("button", name="Like").click()
    expect(seen.get_by_role("button", name="Like")).to_have_attribute("aria-pressed", "true")

    again = DemoPage(browser, base)  # a new window, no state shared with the first
    again.sign_in("dora")
    liked = again.post("Like this one").get_by_role("button", name="Like")
    expect(liked).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    liked.click()  # unlike from the new window
    expect(liked).to_have_attribute("aria-pressed", "false", timeout=WAIT_MS)
    expect(eve.post("Like this one").locator(".likes")).to_have_text("0", timeout=WAIT_MS)
    assert dora.errors == [] and again.errors == [] and eve.errors == []


def test_the_bell_groups_likes_and_follows(browser: Browser, dev_hub: ServerProcess) -> None:
    base = f"http://127.0.0.1:{dev_hub.port}/"
    ivy, jon, kim = DemoPage(browser, base), DemoPage(browser, base), DemoPage(browser, base)
    for page, user in ((ivy, "ivy"), (jon, "jon"), (kim, "kim")):
        page.sign_in(user)
    mine = ivy.compose("Group my likes")
    for fan in (jon, kim):
        fan.follow_suggested("ivy")
        like = fan.post("Group my likes").get_by_role("button", name="Like")
        like.click()
        expect(like).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    expect(mine.locator(".likes")).to_have_text("2", timeout=WAIT_MS)
    expect(ivy.page.locator("#badge")).to_have_text("2", timeout=WAIT_MS)  # two groups
    ivy.page.locator("#bell").click()
    notes = ivy.page.locator("#notes-list li")
    expect(notes).to_have_text(
        [
            re.compile(r"@kim and 1 other liked your post"),
            re.compile(r"@kim and 1 other followed you"),
        ],
        timeout=WAIT_MS,
    )
    assert ivy.errors == [] and jon.errors == [] and kim.errors == []
