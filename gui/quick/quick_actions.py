"""What the Quick LoRA page's buttons do, on named values (`QuickInputs`): check, caption, prepare, open the result in
the LoRA page, train. No widgets here (gui/quick/quick_page.py shows the results); no torch.

Each step starts from the inputs again (nothing is kept between clicks but the files of the work folder), so what the
page says always matches its fields. The source folder is only read: the training folder, its captions, the sample
prompts and the LoRA are written in the work folder (gui/quick/work_folder.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend import families
from backend.atomic import atomic_write
from backend.messages import LANGUAGE_ENV
from backend.models.errors import ModelFileError, ModelMismatchError
from backend.tools.cli.light_cli import InputError
from backend.tools.dataset.dataset_layout import check_tokens
from gui.backend_process import venv_python
from gui.i18n import Translator
from gui.kohya_import.model_choice import recognise_model
from gui.markdown_text import Markdown, md_code, md_escape, md_t
from gui.quick import choices as qc
from gui.quick.dataset_check import FolderCheck, check_folder
from gui.quick.memory_fit import Fitted, fit_to_card
from gui.quick.work_folder import (
    Layout,
    WorkFolderError,
    build_training_folder,
    put_trigger_first,
    uncaptioned,
)
from gui.runs.run_queue import QUEUE, RunQueue
from gui.runs.runner import RunnerBusyError, TrainingRunner
from gui.tools.tool_form import TOOL_RUNNER
from gui.training import form_state, lora_actions
from gui.training.lora_actions import TabValues
from gui.training.training_kinds import LORA

SHOWN = 10  # files listed per problem
BUCKET_DEFAULTS = (256, 1024)  # the trainer's min_bucket_reso and max_bucket_reso


class QuickError(Exception):
    """An input Quick LoRA cannot use; `text` says what and what to do, in the page's language."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class QuickInputs:
    """The page's fields, as typed (strings; "" = let the flow choose)."""

    model: str = ""
    folder: str = ""
    trigger: str = ""
    kind: str = "character"
    class_word: str = ""
    card: str = "cpu"
    work: str = ""
    style: str = "auto"
    captioner_model: str = ""
    resolution: str = ""
    epochs: str = ""
    repeats: str = ""


@dataclass
class Checked:
    """The inputs read and found usable."""

    model: Path
    model_type: str
    model_label: str
    evidence: str
    preset: qc.QuickPreset
    folder: Path
    trigger: str
    kind: str
    class_word: str
    card: str
    work: Path
    adjust: qc.Adjustments
    folder_check: FolderCheck = field(default_factory=FolderCheck)

    @property
    def command(self) -> str:
        return LORA.command_for(self.model_type)


def _path(text: str) -> Path:
    return Path(text.strip().strip('"')).expanduser()


def _number(t: Translator, text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise QuickError(md_t(t, "ui.quick.err.number", field=t.t(f"ui.quick.{name}"), value=text))
    return int(text)


def recognise(t: Translator, text: str) -> tuple[Path, str, str]:
    """(model path, model type, evidence) of the base model, or QuickError saying what it is not."""
    if not text.strip():
        raise QuickError(t.t("ui.quick.err.model_missing"))
    path = _path(text)
    if not path.exists():
        raise QuickError(md_t(t, "ui.quick.err.model_not_found", path=path))
    try:
        found = recognise_model(path)
    except (ModelFileError, ModelMismatchError, OSError) as error:
        raise QuickError(md_t(t, "ui.quick.err.model_unreadable", path=path, error=error)) from None
    if found is None:
        raise QuickError(md_t(t, "ui.quick.err.model_not_recognised", path=path))
    return path, found.family, found.evidence


def quick_preset(t: Translator, model_type: str) -> qc.QuickPreset:
    """The model type's quick preset, or QuickError naming the families Quick LoRA has settings for."""
    preset = qc.load_quick_preset(model_type) if model_type in LORA.model_type_names else None
    if preset is None:
        supported = ", ".join(families.label(name) for name in qc.quick_model_types())
        raise QuickError(
            md_t(t, "ui.quick.err.no_preset", label=families.label(model_type), supported=supported)
        )
    return preset


def model_note(t: Translator, text: str) -> Markdown:
    """What the base model is, or why Quick LoRA cannot use it (said as soon as its field is left)."""
    if not text.strip():
        return Markdown("")
    try:
        model, model_type, evidence = recognise(t, text)
        quick_preset(t, model_type)
    except QuickError as error:
        return Markdown(error.text)
    return md_t(
        t, "ui.quick.found_model", path=model.name, label=families.label(model_type), evidence=evidence
    )


def read_inputs(inputs: QuickInputs, t: Translator) -> Checked:
    """Every field checked, the first problem raised as QuickError; the folder's images are not read yet."""
    model, model_type, evidence = recognise(t, inputs.model)
    label = families.label(model_type)
    preset = quick_preset(t, model_type)
    if not inputs.folder.strip():
        raise QuickError(t.t("ui.quick.err.folder_missing"))
    folder = _path(inputs.folder)
    if not folder.is_dir():
        raise QuickError(md_t(t, "ui.quick.err.folder_not_found", path=folder))
    kind = inputs.kind if inputs.kind in qc.KINDS else "character"
    try:
        trigger = check_tokens(inputs.trigger, t.t("ui.quick.trigger"))
        class_word = check_tokens(inputs.class_word or qc.CLASS_WORDS[kind], t.t("ui.quick.class_word"))
    except InputError as error:
        raise QuickError(md_escape(str(error))) from None
    if "," in trigger:
        raise QuickError(md_t(t, "ui.quick.err.trigger_comma", trigger=trigger))
    adjust = qc.Adjustments(_number(t, inputs.resolution, "resolution"), _number(t, inputs.epochs, "epochs"),
                            _number(t, inputs.repeats, "repeats"))  # fmt: skip
    work = _path(inputs.work) if inputs.work.strip() else default_work_folder(folder, trigger)
    card = inputs.card if inputs.card in qc.CARDS else "cpu"
    return Checked(
        model, model_type, label, evidence, preset, folder, trigger, kind, class_word, card, work, adjust
    )


def default_work_folder(folder: Path, trigger: str) -> Path:
    """Beside the source folder (never in it): `<folder>_lora_<trigger>`."""
    return folder.parent / f"{folder.name}_lora_{output_name(trigger)}"


def output_name(trigger: str) -> str:
    return re.sub(r"[^\w-]+", "_", trigger).strip("_") or "lora"


def _checked_folder(checked: Checked, t: Translator) -> Checked:
    min_side = min(qc.resolution_size(checked.adjust.resolution or checked.preset.resolution)) // 2
    try:
        checked.folder_check = check_folder(checked.folder, min_side)
    except InputError as error:
        raise QuickError(md_escape(str(error))) from None
    if not checked.folder_check.images:
        raise QuickError(md_t(t, "ui.quick.err.no_usable_images", path=checked.folder))
    return checked


def _names(paths: list[Path]) -> str:
    shown = ", ".join(md_code(path.name) for path in paths[:SHOWN])
    return shown + (f" (+{len(paths) - SHOWN})" if len(paths) > SHOWN else "")


def folder_report(checked: Checked, t: Translator) -> list[str]:
    """The Check step's lines: the model found, the images (and what is left out), the captions."""
    found = checked.folder_check
    lines = [
        md_t(
            t,
            "ui.quick.found_model",
            path=checked.model.name,
            label=checked.model_label,
            evidence=checked.evidence,
        ),
        md_t(t, "ui.quick.found_images", count=len(found.images), path=checked.folder),
    ]
    if found.unreadable:
        lines.append(md_t(t, "ui.quick.unreadable", count=len(found.unreadable)) + " " +
                     "; ".join(f"{md_code(p.name)}: {md_escape(why)}" for p, why in found.unreadable[:SHOWN]))  # fmt: skip
    if found.duplicates:
        lines.append(md_t(t, "ui.quick.duplicates", count=len(found.duplicates)) + " " +
                     ", ".join(f"{md_code(a.name)} = {md_code(b.name)}" for a, b in found.duplicates[:SHOWN]))  # fmt: skip
    if found.tiny:
        lines.append(md_t(t, "ui.quick.tiny", count=len(found.tiny)) + " " +
                     ", ".join(f"{md_code(p.name)} ({w}x{h})" for p, (w, h) in found.tiny[:SHOWN]))  # fmt: skip
    if found.unsupported:
        lines.append(
            md_t(t, "ui.quick.unsupported", count=len(found.unsupported)) + " " + _names(found.unsupported)
        )
    if found.subfolders:
        lines.append(md_t(t, "ui.quick.subfolders", count=found.subfolders))
    missing = found.uncaptioned
    lines.append(md_t(t, "ui.quick.captions_found", count=len(found.captions), total=len(found.images)))
    if missing:
        lines.append(md_t(t, "ui.quick.captions_missing", count=len(missing)) + " " + _names(missing))
    if len(found.images) < 5:
        lines.append(md_t(t, "ui.quick.few_images", count=len(found.images)))
    return lines


def captioner(checked: Checked, inputs: QuickInputs) -> tuple[str, str]:
    return qc.captioner_for(checked.preset, inputs.style, str(checked.model))


def caption_offer(checked: Checked, inputs: QuickInputs, t: Translator) -> str:
    """The question asked before captioning: how many, with which captioner and why."""
    tool, style = captioner(checked, inputs)
    why = t.t(
        f"ui.quick.captioner_why.{tool}", label=checked.model_label, style=t.t(f"ui.quick.style.{style}")
    )
    return md_t(t, "ui.quick.caption_offer", count=len(checked.folder_check.uncaptioned),
                captioner=t.t(f"ui.quick.captioner.{tool}"), trigger=checked.trigger) + " " + md_escape(why)  # fmt: skip


@dataclass
class CheckOutcome:
    report: Markdown
    offer: Markdown  # the question before captioning; "" when every image has a caption
    work: str  # the work folder the flow will use (shown in its field when it was empty)


def check(inputs: QuickInputs, t: Translator) -> CheckOutcome:
    try:
        checked = _checked_folder(read_inputs(inputs, t), t)
    except QuickError as error:
        return CheckOutcome(Markdown(error.text), Markdown(""), inputs.work)
    lines = folder_report(checked, t)
    lines.append(md_t(t, "ui.quick.work_note", work=checked.work))
    offer = caption_offer(checked, inputs, t) if checked.folder_check.uncaptioned else ""
    if not offer:
        lines.append(t.t("ui.quick.all_captioned"))
    return CheckOutcome(
        Markdown("\n\n".join(f"- {line}" for line in lines)), Markdown(offer), str(checked.work)
    )


def repeats_of(checked: Checked) -> tuple[int, str]:
    """(repeats, source): the user's, else chosen for the dataset's size and the kind."""
    if checked.adjust.repeats is not None:
        return checked.adjust.repeats, "you"
    _, images_per_epoch = qc.kind_settings(checked.preset, checked.kind)
    return qc.choose_repeats(len(checked.folder_check.images), images_per_epoch), "dataset"


def _layout(checked: Checked, t: Translator) -> Layout:
    repeats, _ = repeats_of(checked)
    found = checked.folder_check
    try:
        return build_training_folder(checked.work, checked.folder, found.images, found.captions, checked.trigger,
                                     checked.class_word, repeats)  # fmt: skip
    except WorkFolderError as error:
        raise QuickError(md_t(t, error.key, **error.fields)) from None
    except OSError as error:
        raise QuickError(md_t(t, "ui.quick.err.work_failed", work=checked.work, error=error)) from None


def caption_argv(tool: str, image_dir: Path, model: str) -> list[str]:
    """The captioner's command line over the training folder (`.txt` files; existing captions are kept)."""
    model = model.strip().strip('"')
    if tool == "wd14":
        argv = ["-m", "backend.tools.tag_images_by_wd14_tagger", str(image_dir), "--caption_extension", ".txt",
                "--remove_underscore"]  # fmt: skip
        if model:
            argv += ["--model_dir", model] if Path(model).expanduser().is_dir() else ["--repo_id", model]
    else:
        argv = ["-m", "backend.tools.make_captions", str(image_dir), "--caption_extension", ".txt"]
        if model:
            argv += ["--model_id", model]
    return [venv_python(), *argv]


def caption(inputs: QuickInputs, t: Translator, runner: TrainingRunner = TOOL_RUNNER) -> Markdown:
    """Build the training folder and caption its images that have no caption (the user asked for it)."""
    if runner.running:
        return Markdown(t.t("ui.tool_busy"))
    try:
        checked = _checked_folder(read_inputs(inputs, t), t)
        layout = _layout(checked, t)
    except QuickError as error:
        return Markdown(error.text)
    missing = uncaptioned(layout.image_dir)
    if not missing:
        return Markdown(t.t("ui.quick.nothing_to_caption"))
    tool, _ = captioner(checked, inputs)
    argv = caption_argv(tool, layout.image_dir, inputs.captioner_model)
    try:
        runner.start(argv, env={LANGUAGE_ENV: t.language})
    except RunnerBusyError:
        return Markdown(t.t("ui.tool_busy"))
    except OSError as error:
        return md_t(t, "ui.tool_bad_input", error=error)
    return md_t(t, "ui.quick.captioning", count=len(missing), captioner=t.t(f"ui.quick.captioner.{tool}"),
                folder=layout.image_dir)  # fmt: skip


@dataclass
class Prepared:
    tab: TabValues
    choices: list[qc.Choice]
    layout: Layout
    steps: int
    repeats: int
    summary: Markdown


@dataclass
class Plan:
    options: dict[str, Any]  # the LoRA form's options
    choices: list[qc.Choice]  # every choice Quick LoRA made, with its source
    steps: int
    repeats: int
    fitted: Fitted  # how the settings were fitted to the card


def plan(checked: Checked, layout: Layout) -> Plan:
    """The settings for a built training folder: family, kind, the user's, the paths, then fitted to the card."""
    settings, _ = qc.base_settings(checked.preset, checked.kind, checked.adjust)
    repeats, _ = repeats_of(checked)
    settings.set("pretrained_model_name_or_path", str(checked.model), "flow")
    settings.set("train_data_dir", str(layout.image_dir.parent), "flow")
    settings.set("output_dir", str(layout.output_dir), "flow")
    settings.set("output_name", output_name(checked.trigger), "flow")
    settings.set("sample_prompts", str(layout.prompts), "flow")
    fit_buckets(settings)
    savers = checked.preset.cards[qc.card_key(checked.card, checked.preset.cards)]
    fitted = fit_to_card(checked.command, {**LORA.defaults, **settings.options}, checked.card, savers)
    settings.apply(fitted.savers, "card")
    for option, value, reason in fitted.planned:
        settings.set(option, value, "planner", reason)
    if checked.adjust.epochs is not None:  # the user's run length wins over every table
        settings.set("max_train_epochs", checked.adjust.epochs, "you")
    options = {**LORA.defaults, **settings.options}
    steps = qc.steps_of(len(checked.folder_check.images), repeats, int(options["max_train_epochs"]),
                        int(options.get("train_batch_size") or 1))  # fmt: skip
    return Plan(options, settings.choices, steps, repeats, fitted)


def memory_note(checked: Checked, fitted: Fitted, t: Translator) -> str:
    """How the settings were fitted to the card: the planner's verdict, or the family's table for the size."""
    if not checked.card.isdigit():
        return ""
    card = t.t(f"ui.quick.card.{checked.card}")
    if fitted.error:
        return md_t(t, "ui.quick.planner_failed", error=fitted.error)
    if not fitted.planner:
        return t.t("ui.quick.card_table_note")
    return t.t("ui.quick.planner_fits" if fitted.fits else "ui.quick.planner_does_not_fit", card=card)


def fit_buckets(settings: qc.Settings) -> None:
    """Aspect-ratio buckets that hold the resolution (a smaller one set by the user: the trainer refuses a smallest
    bucket side above the resolution's short side)."""
    if not settings.options.get("enable_bucket"):
        return
    width, height = qc.resolution_size(settings.options.get("resolution"))
    smallest = settings.options.get("min_bucket_reso", BUCKET_DEFAULTS[0])
    largest = settings.options.get("max_bucket_reso", BUCKET_DEFAULTS[1])
    if min(width, height) < smallest:
        settings.set("min_bucket_reso", min(width, height), "flow")
    if max(width, height) > largest:
        settings.set("max_bucket_reso", max(width, height), "flow")


def _write_prompts(checked: Checked, layout: Layout, resolution: Any) -> None:
    width, height = qc.resolution_size(resolution)
    text = qc.sample_prompts_text(checked.kind, checked.trigger, checked.class_word, width, height)
    with atomic_write(layout.prompts) as file:
        file.write(text)


def choice_rows(choices: list[qc.Choice], checked: Checked, repeats: int, t: Translator) -> str:
    """The choices as a Markdown table: setting, value, why (its one-line reason and where it came from)."""
    sources = {
        "family": t.t("ui.quick.source.family", label=checked.model_label),
        "kind": t.t("ui.quick.source.kind", kind=t.t(f"ui.quick.kind.{checked.kind}")),
        "card": t.t("ui.quick.source.card", card=t.t(f"ui.quick.card.{checked.card}")),
        "dataset": t.t("ui.quick.source.dataset", count=len(checked.folder_check.images)),
        "you": t.t("ui.quick.source.you"),
        "flow": t.t("ui.quick.source.flow"),
        "planner": t.t("ui.quick.source.planner"),
    }
    rows = [f"| {t.t('ui.quick.col.setting')} | {t.t('ui.quick.col.value')} | {t.t('ui.quick.col.why')} |",
            "|---|---|---|"]  # fmt: skip
    folder_choice = [qc.Choice("repeats", repeats, "you" if checked.adjust.repeats else "dataset")]
    for choice in [*folder_choice, *qc.sorted_choices(choices)]:
        label = t.t("ui.quick.repeats") if choice.option == "repeats" else t.option_label(choice.option)
        setting = (
            f"{md_escape(label)} ({md_code(choice.option)})"
            if choice.option != "repeats"
            else md_escape(label)
        )
        key = f"ui.quick.why.{choice.option}"
        reason = t.t(key) if t.t(key) != key else ""
        source = md_escape(sources[choice.source] + (f": {choice.note}" if choice.note else ""))
        why = f"{md_escape(reason)} ({source})" if reason else source
        rows.append(f"| {setting} | {md_code(_shown(choice.value))} | {why} |")
    return "\n".join(rows)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "" if value is None else str(value)


def prepare(inputs: QuickInputs, t: Translator, tools: TrainingRunner = TOOL_RUNNER) -> Prepared:
    """Build the training folder, put the trigger word first in every caption, choose the settings; QuickError
    when something stops it."""
    if tools.running:
        raise QuickError(t.t("ui.quick.err.tool_running"))
    checked = _checked_folder(read_inputs(inputs, t), t)
    layout = _layout(checked, t)
    put_trigger_first(layout.image_dir, checked.trigger)
    planned = plan(checked, layout)
    options, choices, steps, repeats = planned.options, planned.choices, planned.steps, planned.repeats
    try:
        _write_prompts(checked, layout, options.get("resolution"))
    except OSError as error:
        raise QuickError(md_t(t, "ui.quick.err.work_failed", work=checked.work, error=error)) from None
    tab = TabValues(options=options, model_type=checked.model_type, network_type="Standard", kind=LORA)
    images = len(checked.folder_check.images)
    lines = [
        md_t(t, "ui.quick.built", folder=layout.image_dir, linked=layout.linked, copied=layout.copied),
        md_t(
            t,
            "ui.quick.run_length",
            images=images,
            repeats=repeats,
            epochs=options["max_train_epochs"],
            batch=options.get("train_batch_size") or 1,
            steps=steps,
        ),  # fmt: skip
    ]
    still = uncaptioned(layout.image_dir)
    if still:
        lines.append(
            md_t(
                t,
                "ui.quick.still_uncaptioned",
                count=len(still),
                caption=f"{checked.trigger} {checked.class_word}",
            )
        )
    if note := memory_note(checked, planned.fitted, t):
        lines.append(note)
    summary = "\n\n".join(lines) + "\n\n" + choice_rows(choices, checked, repeats, t)
    return Prepared(tab, choices, layout, steps, repeats, Markdown(summary))


def prepare_text(inputs: QuickInputs, t: Translator) -> Markdown:
    try:
        return prepare(inputs, t).summary
    except QuickError as error:
        return Markdown(error.text)


def open_in_lora(inputs: QuickInputs, t: Translator) -> tuple[Markdown, str]:
    """(message, route): the chosen settings put where the LoRA page restores its form from, to open that page."""
    try:
        prepared = prepare(inputs, t)
    except QuickError as error:
        return Markdown(error.text), ""
    if form_state.save_form(LORA, prepared.tab.form_data()) is None:
        return md_t(t, "ui.history.open_failed", path=form_state.state_path(LORA)), ""
    return Markdown(t.t("ui.quick.opening")), "."


def queue_run(inputs: QuickInputs, t: Translator, queue: RunQueue = QUEUE) -> Markdown:
    """Prepare now and queue the run (gui/runs/run_queue.py), as the LoRA page's "Add to queue" does."""
    try:
        prepared = prepare(inputs, t)
    except QuickError as error:
        return Markdown(error.text)
    return Markdown(f"{prepared.summary}\n\n---\n\n{lora_actions.add_to_queue(prepared.tab, t, queue)}")


def train(inputs: QuickInputs, t: Translator, runner: TrainingRunner = lora_actions.RUNNER) -> Markdown:
    """Prepare and start the run as the LoRA page's Start would (recorded in History as a LoRA run)."""
    if runner.running:
        return Markdown(t.t("ui.already_running"))
    try:
        prepared = prepare(inputs, t)
    except QuickError as error:
        return Markdown(error.text)
    started = lora_actions.start(prepared.tab, t, runner)
    return Markdown(f"{prepared.summary}\n\n---\n\n{started}")
