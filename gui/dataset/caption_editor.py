"""The Caption editor tab: a folder's images with their captions, a page at a time, editable in place;
a tag filter, the tag frequencies, and a bulk add/remove of a tag with a preview before anything
is written.

Widgets only: the tab turns its widgets into named values, calls gui/dataset/caption_editor_actions.py
and turns the named results back into widget updates. Thumbnails are sent as pixels, so the
image folder can lie anywhere on disk. Element ids start with `capedit_`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from gui.dataset import caption_editor_actions as actions
from gui.dataset.caption_editor_actions import PAGE_SIZE, EditorState, SlotView
from gui.i18n import Translator
from gui.plain_text import plain_info

SLOTS_PER_ROW = 4
Component = gr.components.Component


@dataclass
class Slot:
    box: gr.Column
    image: gr.Image
    caption: gr.Textbox
    save: gr.Button


@dataclass
class CaptionEditor:
    state: gr.State
    fields: dict[str, Component]  # the form's inputs by name (folder, extension, ..., bulk_first)
    message: gr.Markdown
    page_info: gr.Markdown
    tags: gr.Dataframe
    preview: gr.Textbox
    slots: list[Slot]

    def read(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        return {name: data.get(component) for name, component in self.fields.items() if component in data}

    def texts(self, data: Mapping[Any, Any]) -> list[Any]:
        return [data.get(slot.caption) for slot in self.slots]

    @property
    def outputs(self) -> list[Any]:
        parts = [(slot.box, slot.image, slot.caption) for slot in self.slots]
        return [self.state, self.message, self.page_info, self.tags, self.preview, *(c for p in parts for c in p)]

    def show(self, result: Mapping[str, Any]) -> dict[Any, Any]:
        """Named results -> widget updates (absent names leave their widgets alone)."""
        named = {"state": self.state, "message": self.message, "page_info": self.page_info, "preview": self.preview}
        updates: dict[Any, Any] = {named[key]: value for key, value in result.items() if key in named}
        if "tags" in result:
            updates[self.tags] = gr.Dataframe(value=result["tags"] or None)
        for slot, view in zip(self.slots, result.get("slots", ()), strict=False):
            updates.update(_slot_updates(slot, view))
        return updates


def _slot_updates(slot: Slot, view: SlotView) -> dict[Any, Any]:
    if not view.visible:
        return {slot.box: gr.Column(visible=False)}
    return {
        slot.box: gr.Column(visible=True),
        slot.image: gr.Image(value=view.image, label=view.name),
        slot.caption: gr.Textbox(value=view.text, label=f"{view.name} → {view.caption_file}",
                                 info=plain_info(view.note) if view.note else None, interactive=view.editable),
    }  # fmt: skip


def _folder_row(t: Translator, browse: Callable[[str, bool], str] | None) -> tuple[dict[str, Component], gr.Button]:
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            folder = gr.Textbox(label=t.t("ui.capedit.folder"), info=plain_info(t.t("ui.capedit.folder_info")),
                                elem_classes=["opt-field"], elem_id="capedit_folder")  # fmt: skip
            if browse is not None:
                pick = gr.Button(t.t("ui.browse"), size="sm", elem_id="capedit_browse")
                pick.click(lambda current: browse(current, True), inputs=folder, outputs=folder)
        extension = gr.Textbox(".txt", label=t.t("ui.capedit.extension"), info=plain_info(t.t("ui.capedit.extension_info")),
                               elem_classes=["opt-field"], elem_id="capedit_extension", scale=1, min_width=140)  # fmt: skip
        separator = gr.Textbox(",", label=t.t("ui.capedit.separator"), info=plain_info(t.t("ui.capedit.separator_info")),
                               elem_classes=["opt-field"], elem_id="capedit_separator", scale=1, min_width=140)  # fmt: skip
        recursive = gr.Checkbox(label=t.t("ui.capedit.recursive"), info=plain_info(t.t("ui.capedit.recursive_info")),
                                elem_classes=["opt-field"], elem_id="capedit_recursive", scale=1, min_width=140)  # fmt: skip
    with gr.Row(equal_height=True):
        include = gr.Textbox(label=t.t("ui.capedit.include"), info=plain_info(t.t("ui.capedit.include_info")),
                             elem_classes=["opt-field"], elem_id="capedit_include", scale=3)  # fmt: skip
        exclude = gr.Textbox(label=t.t("ui.capedit.exclude"), info=plain_info(t.t("ui.capedit.exclude_info")),
                             elem_classes=["opt-field"], elem_id="capedit_exclude", scale=3)  # fmt: skip
        load = gr.Button(t.t("ui.capedit.load"), variant="primary", elem_id="capedit_load", scale=1, min_width=160)
    fields = {"folder": folder, "extension": extension, "separator": separator, "recursive": recursive}
    return {**fields, "include": include, "exclude": exclude}, load


def _slot(index: int, label: str) -> Slot:
    with gr.Column(visible=False, min_width=200, elem_id=f"capedit_slot_{index}") as box:
        image = gr.Image(type="pil", interactive=False, height=200, buttons=["fullscreen"],
                         elem_id=f"capedit_image_{index}")  # fmt: skip
        caption = gr.Textbox(lines=3, max_lines=8, elem_id=f"capedit_caption_{index}")
        save = gr.Button(label, size="sm", elem_id=f"capedit_save_{index}")
    return Slot(box, image, caption, save)


def _bulk_panel(t: Translator) -> tuple[dict[str, Component], gr.Button, gr.Button, gr.Textbox]:
    with gr.Group():
        gr.Markdown(t.t("ui.capedit.bulk_title"))
        tag = gr.Textbox(label=t.t("ui.capedit.bulk_tag"), elem_id="capedit_bulk_tag")
        action = gr.Radio([(t.t("ui.capedit.bulk_add"), "add"), (t.t("ui.capedit.bulk_remove"), "remove")],
                          value="add", label=t.t("ui.capedit.bulk_action"), elem_id="capedit_bulk_action")  # fmt: skip
        first = gr.Checkbox(label=t.t("ui.capedit.bulk_first"), elem_id="capedit_bulk_first")
        with gr.Row():
            preview = gr.Button(t.t("ui.capedit.preview"), elem_id="capedit_preview")
            apply = gr.Button(t.t("ui.capedit.apply"), variant="primary", elem_id="capedit_apply")
        text = gr.Textbox(label=t.t("ui.capedit.preview_label"), lines=6, max_lines=20, interactive=False,
                          elem_id="capedit_preview_text")  # fmt: skip
    return {"bulk_tag": tag, "bulk_action": action, "bulk_first": first}, preview, apply, text


def build_caption_editor(t: Translator, browse: Callable[[str, bool], str] | None) -> CaptionEditor:
    """The editor's widgets and events, inside the current Blocks/Tab."""
    gr.Markdown(t.t("ui.capedit.intro"))
    state = gr.State(EditorState())
    fields, load = _folder_row(t, browse)
    message = gr.Markdown(elem_id="capedit_message")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                prev = gr.Button(t.t("ui.capedit.prev"), size="sm", elem_id="capedit_prev")
                page_info = gr.Markdown(t.t("ui.capedit.nothing_loaded"), elem_id="capedit_page_info")
                next_ = gr.Button(t.t("ui.capedit.next"), size="sm", elem_id="capedit_next")
                save_page = gr.Button(t.t("ui.capedit.save_page"), variant="primary", size="sm",
                                      elem_id="capedit_save_page")  # fmt: skip
            slots = []
            for start in range(0, PAGE_SIZE, SLOTS_PER_ROW):
                with gr.Row(equal_height=False):
                    indices = range(start, min(start + SLOTS_PER_ROW, PAGE_SIZE))
                    slots += [_slot(index, t.t("ui.capedit.save")) for index in indices]
        with gr.Column(scale=1, min_width=280):
            tags = gr.Dataframe(headers=[t.t("ui.capedit.tag"), t.t("ui.capedit.count")], datatype=["str", "number"],
                                label=t.t("ui.capedit.tags"), interactive=False, max_height=360,
                                elem_id="capedit_tags")  # fmt: skip
            bulk, preview, apply, preview_text = _bulk_panel(t)
    editor = CaptionEditor(state, {**fields, **bulk}, message, page_info, tags, preview_text, slots)
    _wire(editor, t, load, prev, next_, save_page, preview, apply)
    return editor


def _wire(editor: CaptionEditor, t: Translator, load: gr.Button, prev: gr.Button, next_: gr.Button,
          save_page: gr.Button, preview: gr.Button, apply: gr.Button) -> None:  # fmt: skip
    fields, state, outputs = editor.fields, editor.state, editor.outputs
    folder_inputs = {fields[name] for name in ("folder", "extension", "separator", "recursive", "include", "exclude")}
    bulk_inputs = {state, fields["bulk_tag"], fields["bulk_action"], fields["bulk_first"]}
    captions = {state, *(slot.caption for slot in editor.slots)}

    def on_load(data: dict[Any, Any]) -> dict[Any, Any]:
        return editor.show(actions.load(editor.read(data), t))

    def on_save(data: dict[Any, Any], only: int | None) -> dict[Any, Any]:
        return editor.show(actions.save(data[state], editor.texts(data), t, only))

    load.click(on_load, inputs=folder_inputs, outputs=outputs)
    for name in ("folder", "include", "exclude"):
        fields[name].submit(on_load, inputs=folder_inputs, outputs=outputs)
    prev.click(lambda data: editor.show(actions.turn_page(data[state], -1, editor.texts(data), t)),
               inputs=captions, outputs=outputs)  # fmt: skip
    next_.click(lambda data: editor.show(actions.turn_page(data[state], 1, editor.texts(data), t)),
                inputs=captions, outputs=outputs)  # fmt: skip
    save_page.click(lambda data: on_save(data, None), inputs=captions, outputs=outputs)
    for index, slot in enumerate(editor.slots):
        slot.save.click(lambda data, i=index: on_save(data, i), inputs=captions, outputs=outputs)
    preview.click(lambda data: editor.show(actions.preview(data[state], editor.read(data), t)),
                  inputs=bulk_inputs, outputs=outputs)  # fmt: skip
    apply.click(lambda data: editor.show(actions.apply(data[state], editor.read(data), t)),
                inputs=bulk_inputs, outputs=outputs)  # fmt: skip
    for name in ("bulk_tag", "bulk_action", "bulk_first"):
        fields[name].input(lambda s: editor.show(actions.forget_plan(s)), inputs=state, outputs=outputs)
