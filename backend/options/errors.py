"""The one error type for bad options, config files and dataset configs."""

from __future__ import annotations

from collections.abc import Iterable


class OptionError(ValueError):
    """Every problem found in one pass, so the user can fix them all at once.

    `messages` holds one self-contained line per problem (file, line, option, what is wrong and
    what to do); `str(error)` joins them with newlines.
    """

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))
