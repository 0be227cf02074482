"""Former home of the secret scrubber, kept as an alias: the scrubber lives in nextedit.privacy.scrub."""

from nextedit.privacy.scrub import PATTERNS, Finding, Scrubber, find_secrets, scrub

__all__ = ["PATTERNS", "Finding", "Scrubber", "find_secrets", "scrub"]
