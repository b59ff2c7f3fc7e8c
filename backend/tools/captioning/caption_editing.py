"""Caption editing for the GUI's caption editor and `basic_caption`: list, preview, apply. No torch.

Every bulk operation is two steps, so the GUI can show what will happen before anything is
written: a planning function returns `CaptionChange`s (file, text before, text after; only real
changes), `format_preview` renders them, and `apply_changes` writes them atomically. The
planning functions never touch the disk beyond reading.

Text rules:
- prefix/postfix are joined with a separator (default ", ") and are not added twice: a caption
  that already starts with the prefix (ends with the postfix) keeps it as it is, so running the
  same edit again changes nothing;
- find/replace is plain text, case-sensitive, every occurrence;
- tags are the caption split at the separator (default ","), compared without surrounding
  spaces, and written back joined with the separator plus one space (", ").
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.messages import msg
from backend.tools.cli.light_cli import InputError
from backend.tools.dataset.caption_files import (
    caption_path,
    list_images,
    normalize_extension,
    read_text,
    split_tags,
    write_text,
)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class CaptionEntry:
    image: Path
    caption_file: Path
    text: str | None  # None: no caption file (or an unreadable one, see `error`)
    error: str | None = None  # why the caption file cannot be read (not UTF-8); such entries are never edited

    @property
    def has_caption(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class CaptionChange:
    image: Path
    caption_file: Path
    before: str | None  # None: the caption file does not exist yet
    after: str


def list_captions(
    folder: PathLike, extension: str = ".txt", recursive: bool = False, videos: bool = False
) -> list[CaptionEntry]:
    """Every image in `folder` (and, with `videos`, every video) with its caption text (None when it has
    no caption file), sorted by path.

    An InputError when the folder is missing or has no images. A caption file that is not UTF-8
    gives an entry with `error` set, which the planning functions leave alone.
    """
    extension = normalize_extension(extension)
    entries = []
    for image in list_images(folder, recursive, videos=videos):
        path = caption_path(image, extension)
        try:
            entries.append(CaptionEntry(image, path, read_text(path)))
        except InputError as exc:
            entries.append(CaptionEntry(image, path, None, str(exc)))
    return entries


def save_caption(image: PathLike, text: str, extension: str = ".txt") -> Path:
    """Write one image's caption atomically (creating or replacing its caption file); returns the file."""
    image = Path(image)
    if not image.is_file():
        raise InputError(msg("tool.image_not_found", "image not found: {path}", path=image))
    path = caption_path(image, normalize_extension(extension))
    write_text(path, text)
    return path


def tag_frequencies(entries: Iterable[CaptionEntry], separator: str = ",") -> list[tuple[str, int]]:
    """(tag, number of captions holding it), most frequent first, then alphabetical."""
    counts: Counter[str] = Counter()
    for entry in entries:
        if entry.text:
            counts.update(set(split_tags(entry.text, separator)))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def filter_by_tags(
    entries: Iterable[CaptionEntry], include: Sequence[str] = (), exclude: Sequence[str] = (), separator: str = ","
) -> list[CaptionEntry]:
    """Entries whose captions hold every tag of `include` and none of `exclude`."""
    wanted, unwanted = {t.strip() for t in include if t.strip()}, {t.strip() for t in exclude if t.strip()}
    result = []
    for entry in entries:
        tags = set(split_tags(entry.text or "", separator))
        if wanted <= tags and not (unwanted & tags):
            result.append(entry)
    return result


def join_tags(tags: Sequence[str], separator: str = ",") -> str:
    sep = separator.strip() or separator
    return f"{sep} ".join(tags) if sep.strip() else sep.join(tags)


def add_tag(text: str, tag: str, separator: str = ",", first: bool = False) -> str:
    """`text` with `tag` added at the end (or first); unchanged when it is already there."""
    tags = split_tags(text, separator)
    tag = tag.strip()
    if not tag or tag in tags:
        return text
    return join_tags([tag, *tags] if first else [*tags, tag], separator)


def remove_tag(text: str, tag: str, separator: str = ",") -> str:
    """`text` without `tag` (every occurrence); unchanged when it is not there."""
    tags = split_tags(text, separator)
    if tag.strip() not in tags:
        return text
    return join_tags([t for t in tags if t != tag.strip()], separator)


def with_prefix_postfix(text: str, prefix: str = "", postfix: str = "", separator: str = ", ") -> str:
    prefix, postfix, text = prefix.strip(), postfix.strip(), text.strip()
    if prefix and not text.startswith(prefix):
        text = prefix + separator + text if text else prefix
    if postfix and not text.endswith(postfix):
        text = text + separator + postfix if text else postfix
    return text


def plan_changes(
    entries: Iterable[CaptionEntry], edit: Callable[[str], str], *, missing: str | None = None
) -> list[CaptionChange]:
    """Apply `edit` to each caption; images without a caption start from `missing` (None: left alone)."""
    changes = []
    for entry in entries:
        if entry.error is not None:
            continue
        if entry.text is None:
            if missing is None:
                continue
            after = edit(missing).strip()
            if after:
                changes.append(CaptionChange(entry.image, entry.caption_file, None, after))
        else:
            after = edit(entry.text).strip()
            if after != entry.text:
                changes.append(CaptionChange(entry.image, entry.caption_file, entry.text, after))
    return changes


def plan_basic_edit(
    entries: Iterable[CaptionEntry], *, caption_text: str = "", overwrite: bool = False, prefix: str = "",
    postfix: str = "", find: str = "", replace: str = "", only_missing: bool = False, separator: str = ", ",
) -> list[CaptionChange]:
    """kohya_ss' basic captioning: images without a caption get `caption_text`; with `overwrite`
    existing captions are replaced by it too; then find/replace and prefix/postfix apply to all
    (only to images that had no caption with `only_missing`)."""

    def edit(text: str) -> str:
        if find:
            text = text.replace(find, replace)
        return with_prefix_postfix(text, prefix, postfix, separator)

    changes = []
    for entry in entries:
        if entry.error is not None or (entry.text is not None and only_missing):
            continue
        replaced = entry.text is None or (overwrite and bool(caption_text.strip()))
        after = edit(caption_text if replaced else entry.text).strip()
        if after and after != entry.text:
            changes.append(CaptionChange(entry.image, entry.caption_file, entry.text, after))
    return changes


def plan_add_tag(entries: Iterable[CaptionEntry], tag: str, separator: str = ",", first: bool = False,
                 include_missing: bool = False) -> list[CaptionChange]:
    """Add `tag` to every caption (and start captions holding only it with `include_missing`)."""
    return plan_changes(entries, lambda text: add_tag(text, tag, separator, first),
                        missing="" if include_missing else None)


def plan_remove_tag(entries: Iterable[CaptionEntry], tag: str, separator: str = ",") -> list[CaptionChange]:
    return plan_changes(entries, lambda text: remove_tag(text, tag, separator))


def apply_changes(changes: Iterable[CaptionChange]) -> list[Path]:
    """Write every change atomically; returns the files written."""
    written = []
    for change in changes:
        write_text(change.caption_file, change.after)
        written.append(change.caption_file)
    return written


def format_preview(changes: Sequence[CaptionChange], limit: int | None = None) -> str:
    """One line per change: `file: "before" -> "after"` (`(new)` for files to be created)."""
    lines = []
    for change in changes[:limit] if limit is not None else changes:
        before = msg("tool.preview_new_file", "(new)") if change.before is None else repr(change.before)
        lines.append(f"{change.caption_file}: {before} -> {change.after!r}")
    if limit is not None and len(changes) > limit:
        lines.append(msg("tool.preview_more", "... and {count} more", count=len(changes) - limit))
    return "\n".join(lines)
