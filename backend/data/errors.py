"""The one exception type of the dataset layer.

Every message says what was found and what to do, because these errors reach people who only
see the trainer's log (or the GUI's copy of it).
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset that cannot be trained on as configured; the message names the fix."""
