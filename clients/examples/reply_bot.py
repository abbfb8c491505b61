"""A reply bot: answers every post that mentions it, in the post's thread.

hubbub bot run clients/examples/reply_bot.py --dev-user helper
"""

from clients import Client
from clients.bots import Bot, Mention

bot = Bot("reply")


@bot.on_mention
async def answer(mention: Mention, client: Client) -> None:
    """Reply to the mentioning post, quoting its first words."""
    if mention.post is None:
        return
    words = " ".join(mention.post.text.split()[:8])
    await client.reply(mention.post.id, f"@{mention.notification.actor} you said: {words}")
