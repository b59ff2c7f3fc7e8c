"""What the caption editor's buttons do, on named values: load a folder, page through it, save
captions, preview and apply a bulk tag edit. Nothing here knows about widgets (gui/dataset/caption_editor.py
turns widgets into named values and back), and nothing imports torch: the file work is
backend/tools/captioning/caption_editing.py.

Each action takes the editor's `EditorState` (what was loaded: folder, filter, the images shown,
the page, the captions as they were read) and a mapping of the form's values by name, and returns
a dict of named results: `state`, `message`, `tags` (rows of the frequency table), `page_info`,
`slots` (one `SlotView` per image box of the page), `preview`. A key that is absent leaves its
widget as it is.

Saving never overwrites what it did not show: a page save writes only the boxes whose text the
user changed, and a bulk edit writes only the files whose caption is still the one previewed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from backend.tools.captioning.caption_editing import (
    CaptionChange,
    CaptionEntry,
    apply_changes,
    filter_by_tags,
    format_preview,
    list_captions,
    plan_add_tag,
    plan_remove_tag,
    save_caption,
    tag_frequencies,
)
from backend.tools.cli.light_cli import InputError
from backend.tools.dataset.caption_files import (
    caption_path,
    is_video,
    normalize_extension,
    read_text,
    split_tags,
)
from backend.tools.dataset.video_thumbnail import first_frame
from gui.i18n import Translator
from gui.markdown_text import md_list, md_t

PAGE_SIZE = 8
THUMBNAIL_PX = 320
PREVIEW_LINES = 200


@dataclass(frozen=True)
class EditorState:
    folder: str = ""
    extension: str = ".txt"
    recursive: bool = False
    separator: str = ","
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # the images that pass the filter, in order
    page: int = 0
    page_texts: tuple[str | None, ...] = ()  # the captions of the page's images as last read or saved
    page_editable: tuple[bool, ...] = ()  # False where the caption file cannot be read: never written
    plan: tuple[CaptionChange, ...] = ()  # the previewed bulk edit, applied only as previewed
    plan_key: tuple[str, ...] = ()  # the bulk inputs it was previewed with

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.images) // PAGE_SIZE))

    def page_images(self) -> list[Path]:
        start = self.page * PAGE_SIZE
        return [Path(image) for image in self.images[start : start + PAGE_SIZE]]


@dataclass(frozen=True)
class SlotView:
    """One image box of the page: hidden (`visible` False) when the page has fewer images."""

    visible: bool = False
    name: str = ""  # the image path relative to the folder
    caption_file: str = ""
    image: Image.Image | None = None  # a thumbnail, sent as pixels (the folder may lie anywhere)
    text: str = ""
    editable: bool = False
    note: str = ""  # why the image or its caption cannot be shown/edited


def _tags(text: Any, separator: str) -> tuple[str, ...]:
    return tuple(split_tags(str(text or ""), separator or ","))


def thumbnail(image: Path) -> Image.Image | None:
    """A small RGB copy of `image` (orientation from EXIF applied; a video's first frame, upright), None
    when it cannot be read."""
    if is_video(image):
        return first_frame(image, THUMBNAIL_PX)
    try:
        with Image.open(image) as opened:
            small = ImageOps.exif_transpose(opened)
            small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            return small.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _slot(state: EditorState, image: Path, t: Translator) -> tuple[SlotView, str | None]:
    file = caption_path(image, state.extension)
    try:
        name = str(image.relative_to(state.folder))
    except ValueError:
        name = image.name
    try:
        text = read_text(file)
    except InputError as error:
        return SlotView(True, name, file.name, thumbnail(image), "", False, str(error)), None
    pixels = thumbnail(image)
    unreadable = "ui.capedit.unreadable_video" if is_video(image) else "ui.capedit.unreadable_image"
    note = "" if pixels is not None else t.t(unreadable, file=image.name)
    if text is None:
        note = (note + " " if note else "") + t.t("ui.capedit.no_caption_yet", file=file.name)
    return SlotView(True, name, file.name, pixels, text or "", True, note), text


def page_view(state: EditorState, t: Translator, page: int | None = None) -> dict[str, Any]:
    """The slots and page line for `page` (default: the state's), re-reading the captions."""
    page = state.page if page is None else page
    state = replace(state, page=min(max(page, 0), state.pages - 1))
    slots, texts = [], []
    for image in state.page_images():
        slot, text = _slot(state, image, t)
        slots.append(slot)
        texts.append(text)
    state = replace(state, page_texts=tuple(texts), page_editable=tuple(slot.editable for slot in slots))
    slots += [SlotView()] * (PAGE_SIZE - len(slots))
    info = t.t("ui.capedit.page_info", page=state.page + 1, pages=state.pages, images=len(state.images))
    return {"state": state, "slots": slots, "page_info": info}


def _entries(state: EditorState) -> list[CaptionEntry]:
    entries = list_captions(state.folder, state.extension, state.recursive, videos=True)
    return filter_by_tags(entries, state.include, state.exclude, state.separator)


def load(values: Mapping[str, Any], t: Translator) -> dict[str, Any]:
    """Read the folder's images and captions, keep those that pass the tag filter, show page 1."""
    folder = str(values.get("folder") or "").strip()
    if not folder:
        return {"message": t.t("ui.capedit.no_folder")}
    separator = str(values.get("separator") or ",")
    try:
        extension = normalize_extension(str(values.get("extension") or ""))
        state = EditorState(
            folder=str(Path(folder).expanduser()), extension=extension, recursive=bool(values.get("recursive")),
            separator=separator, include=_tags(values.get("include"), separator),
            exclude=_tags(values.get("exclude"), separator),
        )  # fmt: skip
        entries = _entries(state)
    except InputError as error:
        return {"message": md_t(t, "ui.capedit.load_failed", error=error), "tags": [], **page_view(EditorState(), t)}
    state = replace(state, images=tuple(str(entry.image) for entry in entries))
    captioned = sum(entry.has_caption for entry in entries)
    if state.include or state.exclude:
        message = md_t(t, "ui.capedit.loaded_filtered", shown=len(entries), captioned=captioned, folder=state.folder)
    else:
        message = md_t(t, "ui.capedit.loaded", shown=len(entries), captioned=captioned, folder=state.folder)
    unreadable = [entry.error for entry in entries if entry.error]
    if unreadable:
        message += "\n\n" + md_t(t, "ui.capedit.unreadable_captions", count=len(unreadable), first=unreadable[0])
    rows = [[tag, count] for tag, count in tag_frequencies(entries, separator)]
    return {"message": message, "tags": rows, "preview": "", **page_view(state, t, 0)}


def unsaved(state: EditorState, texts: Sequence[Any]) -> list[int]:
    """The page's boxes whose text differs from the caption as read (editable boxes only)."""
    return [
        index for index, before in enumerate(state.page_texts)
        if state.page_editable[index] and index < len(texts) and str(texts[index] or "").strip() != (before or "")
    ]  # fmt: skip


def turn_page(state: EditorState, step: int, texts: Sequence[Any], t: Translator) -> dict[str, Any]:
    """The next (`step` 1) or previous (-1) page; refused while the page holds unsaved edits."""
    if not state.images:
        return {"message": t.t("ui.capedit.load_first")}
    changed = unsaved(state, texts)
    if changed:
        names = ", ".join(state.page_images()[index].name for index in changed)
        return {"message": md_t(t, "ui.capedit.unsaved", count=len(changed), files=names)}
    return {**page_view(state, t, state.page + step), "message": ""}


def save(state: EditorState, texts: Sequence[Any], t: Translator, only: int | None = None) -> dict[str, Any]:
    """Write the captions of the page's boxes that the user changed (only box `only` when given).

    The page is read again afterwards; a changed box that was not written (another box's Save, or
    a failed write) keeps the user's text, still unsaved."""
    images = state.page_images()
    if not images:
        return {"message": t.t("ui.capedit.load_first")}
    changed = unsaved(state, texts)
    written, kept, problems = [], [], []
    for index in changed:
        text = str(texts[index] or "").strip()
        if only is not None and index != only:
            kept.append((index, text))
            continue
        try:
            written.append(save_caption(images[index], text, state.extension))
        except (InputError, OSError) as error:
            problems.append(f"{images[index]}: {error}")
            kept.append((index, text))
    view = page_view(state, t)
    slots = list(view["slots"])
    for index, text in kept:
        slots[index] = replace(slots[index], text=text)
    if problems:
        message = t.t("ui.capedit.save_failed", count=len(problems)) + "\n" + md_list(problems)
    elif written:
        message = md_t(t, "ui.capedit.saved", count=len(written), files=", ".join(path.name for path in written))
    else:
        message = t.t("ui.capedit.nothing_changed")
    return {**view, "slots": slots, "message": message, "tags": _tag_rows(view["state"])}


def _tag_rows(state: EditorState) -> list[list[Any]]:
    try:
        return [[tag, count] for tag, count in tag_frequencies(_entries(state), state.separator)]
    except InputError:
        return []


def _bulk_key(values: Mapping[str, Any]) -> tuple[str, ...]:
    return (str(values.get("bulk_action") or ""), str(values.get("bulk_tag") or "").strip(),
            str(bool(values.get("bulk_first"))))  # fmt: skip


def preview(state: EditorState, values: Mapping[str, Any], t: Translator) -> dict[str, Any]:
    """Plan adding or removing a tag on the images shown (the filtered ones) and list the changes."""
    if not state.images:
        return {"message": t.t("ui.capedit.load_first")}
    action, tag, _first = _bulk_key(values)
    if not tag:
        return {"message": t.t("ui.capedit.no_tag"), "preview": "", "state": replace(state, plan=(), plan_key=())}
    if state.separator.strip() and state.separator.strip() in tag:
        return {"message": md_t(t, "ui.capedit.tag_has_separator", tag=tag, separator=state.separator.strip())}
    try:
        shown = set(state.images)
        entries = [entry for entry in _entries(state) if str(entry.image) in shown]
    except InputError as error:
        return {"message": md_t(t, "ui.capedit.load_failed", error=error)}
    if action == "remove":
        changes = plan_remove_tag(entries, tag, state.separator)
    else:
        changes = plan_add_tag(entries, tag, state.separator, first=bool(values.get("bulk_first")))
    state = replace(state, plan=tuple(changes), plan_key=_bulk_key(values))
    if not changes:
        return {"state": state, "preview": "", "message": md_t(t, "ui.capedit.plan_empty", tag=tag, images=len(entries))}
    message = t.t("ui.capedit.plan_ready", changes=len(changes), images=len(entries))
    return {"state": state, "preview": format_preview(changes, PREVIEW_LINES), "message": message}


def apply(state: EditorState, values: Mapping[str, Any], t: Translator) -> dict[str, Any]:
    """Write the previewed changes whose caption is still as previewed; then show the folder again."""
    if not state.plan or state.plan_key != _bulk_key(values):
        return {"message": t.t("ui.capedit.preview_first")}
    current, stale = [], []
    for change in state.plan:
        try:
            still = read_text(change.caption_file) == change.before
        except InputError:
            still = False
        (current if still else stale).append(change)
    try:
        written = apply_changes(current)
    except OSError as error:
        return {"message": md_t(t, "ui.capedit.apply_failed", error=error)}
    state = replace(state, plan=(), plan_key=())
    message = t.t("ui.capedit.applied", count=len(written))
    if stale:
        message += "\n\n" + md_t(t, "ui.capedit.stale", count=len(stale), files=", ".join(c.caption_file.name for c in stale))
    view = page_view(state, t)
    return {**view, "message": message, "preview": "", "tags": _tag_rows(view["state"])}


def forget_plan(state: EditorState) -> dict[str, Any]:
    """A bulk input changed: the preview no longer describes what Apply would do."""
    return {"state": replace(state, plan=(), plan_key=()), "preview": ""}
