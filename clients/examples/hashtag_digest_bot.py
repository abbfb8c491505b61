"""A hashtag digest bot: posts a periodic summary of a hashtag's new posts.

    DIGEST_TAG=python DIGEST_SECONDS=3600 \\
        hubbub bot run clients/examples/hashtag_digest_bot.py --dev-user digest
"""

import os

from clients import Client
from clients.bots import Bot

TAG = os.environ.get("DIGEST_TAG", "hubbub")
SECONDS = float(os.environ.get("DIGEST_SECONDS", "3600"))

bot = Bot("digest")
seen = {"last": 0}  # the newest post id already summarised


@bot.on_start
async def remember_where_we_are(client: Client) -> None:
    """Summarise only what is posted from now on."""
    newest = (await client.hashtag(TAG, limit=1)).items
    seen["last"] = newest[0].id if newest else 0


@bot.every(SECONDS)
async def digest(client: Client) -> None:
    """Post how many new #TAG posts there were, by whom, and the most liked one."""
    posts = [
        p
        for p in (await client.hashtag(TAG, limit=100)).items
        if p.id > seen["last"] and p.author != client.me.id
    ]
    if not posts:
        return
    seen["last"] = max(p.id for p in posts)
    authors = ", ".join(sorted({p.author for p in posts}))
    top = max(posts, key=lambda p: (p.likes, p.id))
    text = f"#{TAG} digest: {len(posts)} new posts by {authors}. Most liked: {top.text!r}"
    await client.post(text[:500])
