"""The one exception configuration loading raises."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """Invalid configuration.  ``messages`` holds every problem found, one
    ``file:line: key.path: what is wrong`` line each, already sorted.

    No message ever contains a secret's value.
    """

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages: list[str] = list(messages)
        super().__init__("\n".join(self.messages))
