"""Deleted means gone, and retention's age is a hard bound (both backends).

An edit or a deletion scrubs the post's earlier changes from the change logs, in the
write's own commit: the raw bytes each backend stores (the SQLite file and its WAL after
a prune round's checkpoint; every Redis key, read whole and dumped) hold no old text,
tag or mention. A prune round removes every change older than the hard bound, however
few its log holds.
"""

from __future__ import annotations

import asyncio

from hub.backends.base import Store
from hub.records import ChangeKind
from tests.backends.backend_harness import Backends, Factory, interest, post_change

MINUTE = 60_000

EDITED = ("zqxeditword", "zqxedittag", "zqxeditmention")
"""The markers of the post that is edited: a word, its #tag and its @mention."""
GONE = ("zqxgoneword", "zqxgonetag", "zqxgonemention")
"""The markers of the post that is deleted."""


async def post(
    store: Store, author: str, text: str, tags: tuple[str, ...], at: int
) -> tuple[int, int]:
    """Create a post (its mentions are the words after ``@``); return its id and the
    sequence of its creation."""
    mentions = tuple(word[1:] for word in text.split() if word.startswith("@"))
    created = await store.create_post(author, text, None, None, tags, mentions, (), at)
    return created.value.id, created.changes[0].seq


async def test_edits_and_deletions_leave_no_old_text_in_the_stored_bytes(
    backend: Backends,
) -> None:
    store = backend.store
    for user in ("ann", "bob"):
        await store.ensure_profile(user, 1)
    word, tag, mention = EDITED
    edited, edited_origin = await post(store, "ann", f"{word} #{tag} @{mention}", (tag,), 2)
    word, tag, mention = GONE
    gone, gone_origin = await post(store, "ann", f"{word} #{tag} @{mention}", (tag,), 3)
    for post_id in (edited, gone):  # counters and replies carry the post's tags too
        await store.like("bob", post_id, "ann", 4)
        await store.record_counts(post_id, 5)
        await store.create_post("bob", "a reply", post_id, post_id, (), (), (), 6)
        await store.edit_post(post_id, f"interim {post_id} #interimtag", ("interimtag",), (), 7)
    await store.edit_post(edited, "zqxnewword #zqxnewtag", ("zqxnewtag",), (), 8)
    await store.delete_post(gone, 9)
    await backend.changelog.prune(10)  # nothing is old; the round checkpoints the WAL

    raw = await backend.raw()
    assert b"zqxnewword" in raw and b"zqxnewtag" in raw and b"a reply" in raw  # it reads
    for marker in (*EDITED, *GONE, "interim", "interimtag"):
        assert marker.encode() not in raw, f"{marker} is still stored"
    assert await store.get_post(gone) is None
    assert [p.id for p in (await store.hashtag_page("zqxnewtag", None, 10)).items] == [edited]
    logged = await backend.changelog.read_since(0, interest("ann", ("ann",)), 100)
    assert logged is not None
    last_edit, deletion = (
        c for c in logged if c.kind != ChangeKind.NOTIFICATION and c.post in (edited, gone)
    )  # each post's one change left: the last edit, the deletion
    assert (last_edit.kind, last_edit.data["text"]) == (
        ChangeKind.POST_EDITED,
        "zqxnewword #zqxnewtag",
    )
    assert (last_edit.tags, last_edit.origin) == (("zqxnewtag",), edited_origin)
    assert (deletion.kind, deletion.data, deletion.tags) == (
        ChangeKind.POST_DELETED,
        {"id": gone},
        (),
    )
    assert deletion.origin == gone_origin


async def test_no_change_outlives_the_hard_bound(make_backend: Factory) -> None:
    log = (
        await make_backend(retention_seconds=60, retention_per_log=1000, retention_max_seconds=120)
    ).changelog
    s = [
        c.seq
        for c in await log.append(
            [
                post_change("ann", 1, at=0),
                post_change("bob", 2, at=0),
                post_change("ann", 3, at=MINUTE),
            ]
        )
    ]
    everyone = interest(public=True)
    assert await log.prune(2 * MINUTE - 1) == 0  # older than a minute, but among the newest
    assert await log.prune(2 * MINUTE) == 2  # two minutes old: gone, newest or not
    assert await log.read_since(0, everyone, 10) is None  # resync
    found = await log.read_since(s[1], everyone, 10)
    assert found is not None and [c.post for c in found] == [3]
    assert await log.prune(3 * MINUTE) == 1
    assert await log.read_since(s[2], everyone, 10) == [] and await log.head() == s[2]


async def test_a_read_that_a_scrub_interleaves_with_never_loses_the_post(
    backend: Backends,
) -> None:
    store, log = backend.store, backend.changelog
    await store.ensure_profile("ann", 1)
    post_id, _ = await post(store, "ann", "first words", (), 2)
    reading = asyncio.create_task(log.read_since(0, interest("bob", ("bob", "ann")), 100))
    await asyncio.sleep(0)  # the read runs up to its first wait
    await store.edit_post(post_id, "second words", (), (), 3)
    found = await reading
    assert found is not None
    story = [(c.kind, c.data["text"]) for c in found if c.post == post_id]
    # the creation (read before the edit), or the edit that restates the post: never neither
    assert story in (
        [(ChangeKind.POST_CREATED, "first words")],
        [(ChangeKind.POST_EDITED, "second words")],
    )
