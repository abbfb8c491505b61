"""Example bots: copy one, change the handlers, run it with ``hubbub bot run``."""
