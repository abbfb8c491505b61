"""The bot framework and each example bot, end to end against a real hub."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from clients import Client, FeedInsert, NewNotification, Post, RateLimited, connect
from clients.bots import Bot
from clients.bots.cli import BotError, load_bot
from tests.clients.conftest import SECRET, Open, expect, token
from tests.hub.serverproc import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "examples"

RunBot = Callable[[Bot, str], Awaitable[Client]]


@pytest.fixture
async def run_bot(sdk: Open) -> AsyncIterator[RunBot]:
    """Run a bot as a user in this process: ``await run_bot(bot, "name")``."""
    tasks: list[asyncio.Task[None]] = []

    async def start(bot: Bot, user: str) -> Client:
        client = await sdk(user, rate_limit_retries=5)
        tasks.append(asyncio.get_running_loop().create_task(bot.run(client)))
        return client

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_reply_bot_answers_a_mention(sdk: Open, run_bot: RunBot) -> None:
    await run_bot(load_bot(EXAMPLES / "reply_bot.py"), "helper")
    alice = await sdk("alice")
    events = alice.events()
    asked = await alice.post("@helper what time is it")
    reply = await expect(events, NewNotification)
    assert (reply.notification.actor, reply.notification.kind) in {
        ("helper", "reply"),
        ("helper", "mention"),
    }
    answers = (await alice.replies(asked.id)).items
    assert [p.author for p in answers] == ["helper"]
    assert "what time is it" in answers[0].text


async def test_welcome_bot_follows_back_and_greets(sdk: Open, run_bot: RunBot) -> None:
    await run_bot(load_bot(EXAMPLES / "welcome_bot.py"), "welcome")
    alice = await sdk("alice")
    events = alice.events()
    await alice.follow("welcome")
    followed = await expect(events, NewNotification)
    assert (followed.notification.kind, followed.notification.actor) == ("follow", "welcome")
    greeting = await expect(events, NewNotification)
    assert greeting.notification.kind == "mention"
    assert "@alice" in (await alice.timeline("welcome")).items[0].text


async def test_hashtag_digest_bot_posts_a_summary(
    sdk: Open, run_bot: RunBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_TAG", "garden")
    monkeypatch.setenv("DIGEST_SECONDS", "0.1")
    alice = await sdk("alice")
    bob = await sdk("bob")
    await alice.post("old news #garden")
    digest = load_bot(EXAMPLES / "hashtag_digest_bot.py")
    await run_bot(digest, "digest")
    await alice.follow("digest")
    events = alice.events()
    await digest.started.wait()
    await alice.post("tomatoes are up #garden")
    await bob.post("so are the beans #Garden")
    while (insert := await expect(events, FeedInsert)).post.author != "digest":
        pass
    assert "#garden digest: 2 new posts by alice, bob" in insert.post.text


async def test_handler_errors_are_logged_and_the_bot_goes_on(
    sdk: Open, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot("flaky")
    seen: list[str] = []
    done = asyncio.Event()

    @bot.on_post
    async def on_post(post: Post, client: Client) -> None:
        seen.append(post.text)
        if post.text == "boom":
            raise RuntimeError("handler bug")
        done.set()

    alice = await sdk("alice")
    flaky = await run_bot(bot, "flaky")
    await flaky.follow("alice")
    await alice.post("boom")
    await alice.post("still alive")
    async with asyncio.timeout(10):
        await done.wait()
    assert seen == ["boom", "still alive"]
    assert "handler bug" in caplog.text


async def test_a_blocked_request_is_logged_in_one_line_and_the_bot_goes_on(
    sdk: Open, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clients.bots.framework")
    bot = Bot("fan")
    entered, go = asyncio.Event(), asyncio.Event()
    liked: list[str] = []

    @bot.on_post
    async def like_it(post: Post, client: Client) -> None:
        if post.author == "alice":  # alice blocks the bot meanwhile
            entered.set()
            await go.wait()
        await client.like(post.id)
        liked.append(post.author)

    alice, carol = await sdk("alice"), await sdk("carol")
    fan = await run_bot(bot, "fan")
    await fan.follow("alice")
    await fan.follow("carol")
    await alice.post("like me, fan")
    async with asyncio.timeout(10):
        await entered.wait()
    await alice.block("fan")
    go.set()
    events = carol.events()
    await carol.post("and me")
    while (note := (await expect(events, NewNotification)).notification).kind != "like":
        pass
    assert note.actor == "fan"  # the bot went on to carol's post
    assert liked == ["carol"]
    assert "like_it was refused by a block: blocked" in caplog.text
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.node_settings(write_burst=2.0, write_rate=20.0, flood_strikes=1000)
async def test_rate_limited_requests_back_off_and_succeed(sdk: Open) -> None:
    eager = await sdk("eager")
    with pytest.raises(RateLimited) as limited:
        for i in range(10):
            await eager.post(f"too fast {i}")
    assert limited.value.retry_after > 0
    patient = await sdk("patient", rate_limit_retries=10)
    posts = [await patient.post(f"paced {i}") for i in range(6)]
    assert len({p.id for p in posts}) == 6


def test_load_bot_explains_bad_files(tmp_path: Path) -> None:
    with pytest.raises(BotError, match="no bot file"):
        load_bot(tmp_path / "missing.py")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(BotError, match="must define one Bot"):
        load_bot(empty)


async def test_cli_runs_a_bot_against_a_dev_hub(tmp_path: Path, sdk: Open) -> None:
    server = ServerProcess(tmp_path / "data", SECRET, "--dev")
    server.start()
    command = [sys.executable, "-m", "hub.cli", "bot", "run", str(EXAMPLES / "reply_bot.py")]
    bot = subprocess.Popen(  # noqa: ASYNC220 - a child that runs while the test talks to it
        [*command, "--url", server.url, "--dev-user", "helper"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        alice = await connect(server.url, token=token("alice"))
        while True:  # the bot may still be starting: ask until it answers
            await alice.post("@helper ping")
            try:
                note = await expect(alice.events(), NewNotification, within=2)
                break
            except TimeoutError:
                assert bot.poll() is None, bot.communicate()[0]
        assert note.notification.actor == "helper"
        await alice.close()
    finally:
        bot.terminate()
        output = bot.communicate(timeout=10)[0]
        server.kill()
    assert "running as @helper" in output, output


def test_cli_errors_say_what_to_do(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "hub.cli", "bot", "run", str(tmp_path / "nope.py")]
    done = subprocess.run(
        [*command, "--token", "x"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1 and "no bot file" in done.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "hub.cli", "bot", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "--dev-user" in helped.stdout and "examples" in helped.stdout
