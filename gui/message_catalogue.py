"""The English runtime messages, read from the code: every `msg("id", "template", ...)` call.

`backend/messages.py` says why messages are written inline. This module finds them so that
`gui/i18n.py` can put them into `localizations/en.json` as `msg.<id>` (and the tests can check
that every language translates each one with the same placeholders). Reading the source with
`ast` keeps it light: nothing is imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = ("backend", "gui", "devtools", "kohya_gui.py")  # devtools: the tiny-model maker's messages
MESSAGE_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


@dataclass(frozen=True)
class Site:
    message_id: str
    template: str
    where: str  # path:line, for error messages


class MessageScanError(ValueError):
    pass


def source_files(repo: Path = REPO) -> Iterator[Path]:
    for root in SOURCE_ROOTS:
        path = repo / root
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def _is_msg_call(node: ast.Call) -> bool:
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "msg") or (
        isinstance(func, ast.Attribute) and func.attr == "msg"
    )


def sites_in(path: Path, repo: Path = REPO) -> Iterator[Site]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _is_msg_call(node):
            continue
        where = f"{path.relative_to(repo)}:{node.lineno}"
        literal = [isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:2]]
        if len(node.args) < 2 or not all(literal):
            raise MessageScanError(f"{where}: msg() needs a literal id and a literal English template")
        message_id, template = node.args[0].value, node.args[1].value  # type: ignore[attr-defined]
        if not MESSAGE_ID.match(message_id):
            raise MessageScanError(f"{where}: message id {message_id!r} must be dotted lower-case words")
        yield Site(message_id, template, where)


def english_messages(files: Iterable[Path] | None = None, repo: Path = REPO) -> dict[str, str]:
    """Message id -> English template, sorted by id; one id used with two templates is an error."""
    found: dict[str, Site] = {}
    for path in files if files is not None else source_files(repo):
        for site in sites_in(path, repo):
            earlier = found.setdefault(site.message_id, site)
            if earlier.template != site.template:
                raise MessageScanError(
                    f"message id {site.message_id!r} has two texts ({earlier.where} and {site.where}); "
                    "give one of them another id"
                )
    return {message_id: found[message_id].template for message_id in sorted(found)}
