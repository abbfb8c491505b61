"""The domain's one exception: a rule violation with the error code to report."""

from __future__ import annotations

from protocol.errors import ErrorCode

__all__ = ["DomainError"]


class DomainError(Exception):
    """A request broke a domain rule; ``code`` goes into the error reply with ``message``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
