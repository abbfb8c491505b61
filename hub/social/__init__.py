"""The social domain: rules of profiles, follows, posts, likes, feeds and notifications.

:class:`SocialService` is the entry point; it runs on the seams of ``hub.backends.base``
and reports rule violations as :class:`DomainError`. ``hub.wire`` turns records
into wire maps.
"""

from hub.social.errors import DomainError
from hub.social.service import SocialService

__all__ = ["DomainError", "SocialService"]
