"""A welcome bot: follows back every new follower and greets them.

hubbub bot run clients/examples/welcome_bot.py --dev-user welcome
"""

from clients import Client, Notification
from clients.bots import Bot

bot = Bot("welcome")


@bot.on_follow
async def welcome(follow: Notification, client: Client) -> None:
    """Follow the new follower back and say hello."""
    await client.follow(follow.actor)
    await client.post(f"Welcome to Hubbub, @{follow.actor}! Glad you are here.")
