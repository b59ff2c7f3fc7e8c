"""The model layer's two error types; both reach users who only see a log line, so every message
names the file and says what to do.

`ModelFileError` is a `ModelMismatchError`, so every caller that reports "this model cannot be used"
(the trainer's preflight, the LoRA tools, the metadata tools) reports a damaged file the same way,
as one line instead of a traceback. Messages are `backend.messages.msg` texts, in the user's language.
Light: no torch.
"""

from __future__ import annotations

from pathlib import Path

from backend.messages import msg


class ModelMismatchError(ValueError):
    """The model cannot be used as given: the file and the command/flags disagree, or the file is not
    a base model of a family this trainer supports; the message says what to use instead."""


class ModelFileError(ModelMismatchError):
    """A model file or folder that cannot be read: empty, cut short, damaged, or no model file at all."""

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        # `problem` and `fix` are whole clauses (msg texts), so a translation can join them its own way.
        super().__init__(msg("model.file_problem", "{path}: {problem}; {fix}", path=path, problem=problem, fix=fix))
        self.path = str(path)
        self.problem = problem
        self.fix = fix
