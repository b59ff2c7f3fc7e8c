"""The Generate page (route "generate"): images from a base model with networks at chosen weights and embeddings,
sd-scripts' prompt syntax, and X/Y grids, by `python -m backend.tools.generate` in a subprocess.

The page is laid out for the task rather than as the tool's flags: the model, network rows (file + weight),
embeddings, prompts, the image settings, then the X/Y grid with a chooser of History runs whose saved files
become the X axis ("which epoch, at which weight"). Its values go through gui/generate/generate_args.py (the
argv, checked by the tool's own checks before anything starts); the run has a runner of its own, shown by the
tools' panel (status, progress, log, Stop), so a LoRA tool can run meanwhile and each page shows its own run. When
the run has finished, the same poll shows its images and grid (gui/generate/generate_results.py).

"Add to queue" makes the same checks as Run and queues the argv as a "generate" item (gui/runs/run_queue.py), which
the queue's worker starts through this page's runner when nothing else runs: the page shows it as its own run (a
page left open is woken by the header's queue line when it starts: gui/queue/queue_line.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from backend.families import declaration
from backend.messages import LANGUAGE_ENV
from backend.tools.flags.generation import AXES, SAMPLER_CHOICES
from backend.tools.generation.plan import Plan
from gui.generate import generate_form
from gui.generate.generate_args import (
    DEFAULTS,
    NETWORK_SLOTS,
    GenerateInputError,
    check_argv,
    generate_argv,
    part_files,
    queue_name,
    run_saves,
    saves_axis_text,
)
from gui.generate.generate_results import run_results, servable
from gui.history.history_actions import run_choice
from gui.i18n import Translator
from gui.markdown_text import Markdown, md_code, md_list, md_t
from gui.page_values import PageValuesBlocks
from gui.plain_text import plain_info
from gui.queue.queue_actions import queued_text
from gui.queue.queue_line import wake_on_queue_start, wake_queue_line
from gui.runs.poll_timers import wake_after
from gui.runs.run_history import HISTORY, RunHistory
from gui.runs.run_queue import QUEUE, RunQueue
from gui.runs.runner import RunnerBusyError, TrainingRunner
from gui.tools.tool_form import build_tool_panel
from gui.training.model_types import kind_model_types, model_type_choices
from gui.training.training_kinds import KINDS

# A runner of its own: a generation and a LoRA tool may run side by side, and each page shows only its own run.
GENERATE_RUNNER = TrainingRunner()
HISTORY_RUNS = 50  # the newest runs the chooser reads (each a run.json)
Browse = Callable[[str, bool], str] | None


def _image_model_types() -> list[Any]:
    return list(kind_model_types("lora"))  # the families generate.py renders: those a LoRA trains on


def network_runs(history: RunHistory, t: Translator) -> list[tuple[str, str]]:
    """(label, id) of the recorded runs that saved network files (LoRA, LECO ...; no fine-tunes), newest first."""
    chosen = []
    for run in history.runs()[:HISTORY_RUNS]:
        kind = KINDS.get(str(run.get("kind")))
        if kind is None or not kind.networks or kind.video_samples:
            continue
        if run_saves(history.record(str(run["id"])) or {}):
            chosen.append(run_choice(run, t))
    return chosen


class GeneratePage:
    """The page's fields by name (the tool's flag names, DEFAULTS) and what its buttons do."""

    def __init__(self, t: Translator, browse: Browse, history: RunHistory, runner: TrainingRunner,
                 queue: RunQueue = QUEUE) -> None:  # fmt: skip
        self.t, self.browse, self.history, self.runner, self.queue = t, browse, history, runner, queue
        self.fields: dict[str, gr.components.Component] = {}

    def _common(self, name: str, flag: str | None = None, help_text: str | None = None,
                label: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Label (the catalogue's `ui.generate.<name>` and the flag it becomes, as the tool forms show it), help
        on hover, element id `generate_<name>`."""
        shown = f"--{name}" if flag is None else flag
        text = self.t.t(f"ui.generate.{name}") if label is None else label
        common: dict[str, Any] = {
            "label": f"{text} ({shown})" if shown else text,
            "elem_id": f"generate_{name}",
        }
        if help_text:
            common.update(info=plain_info(help_text), elem_classes=["opt-field"])
        return common

    def text(self, name: str, flag: str | None = None, help_text: str | None = None, label: str | None = None,
             **kwargs: Any) -> gr.Textbox:  # fmt: skip
        value = DEFAULTS.get(name)
        box = gr.Textbox(value="" if value is None else str(value), **self._common(name, flag, help_text, label),
                         **kwargs)  # fmt: skip
        self.fields[name] = box
        return box

    def path(self, name: str, folder: bool, flag: str | None = None, help_text: str | None = None,
             label: str | None = None, **kwargs: Any) -> gr.Textbox:  # fmt: skip
        """A path field, with a Browse button where dialogs work."""
        box = self.text(name, flag, help_text, label, **kwargs)
        if self.browse is not None:
            button = gr.Button(
                self.t.t("ui.browse"), size="sm", scale=0, min_width=90, elem_id=f"browse_generate_{name}"
            )
            browse = self.browse
            button.click(lambda current: browse(current, folder), inputs=box, outputs=box)
        return box

    def dropdown(self, name: str, choices: list[Any], flag: str | None = None, **kwargs: Any) -> gr.Dropdown:
        box = gr.Dropdown(choices=choices, value=DEFAULTS.get(name), **self._common(name, flag), **kwargs)
        self.fields[name] = box
        return box

    # ---- what the buttons do ---------------------------------------------------------------------

    def _checked(self, values: Mapping[str, Any]) -> tuple[list[str], Plan]:
        """The form saved (as it is, even a bad one), then its argv through every check (GenerateInputError)."""
        generate_form.save_form(values)
        argv = generate_argv(values)
        return argv, check_argv(argv)

    def _cannot(self, problems: list[Any]) -> str:
        return f"{self.t.t('ui.generate.cannot')}\n\n{md_list(problems)}"

    def _command(self, argv: list[str]) -> str:
        return md_code(shlex.join(argv[1:]))

    def _size(self, plan: Plan, keys: str) -> str:
        """How many images (and the grid's shape): `ui.generate.<keys>_grid` / `_images`."""
        if plan.x is not None and plan.y is not None:
            return self.t.t(f"ui.generate.{keys}_grid", images=len(plan.jobs), columns=len(plan.x.values),
                            rows=len(plan.y.values))  # fmt: skip
        return self.t.t(f"ui.generate.{keys}_images", images=len(plan.jobs))

    def generate(self, values: Mapping[str, Any]) -> str:
        t = self.t
        try:
            argv, plan = self._checked(values)
            self.runner.start(argv, env={LANGUAGE_ENV: t.language}, meta={"kind": "generate"})
        except GenerateInputError as error:
            return self._cannot(error.problems)
        except RunnerBusyError:
            return t.t("ui.generate.busy")
        except OSError as error:
            return self._cannot([error])
        return f"{self._size(plan, 'started')}\n\n{self._command(argv)}"

    def add_to_queue(self, values: Mapping[str, Any]) -> str:
        """Checked as Run checks it; queued as the argv Run would start (gui/runs/run_queue.py)."""
        t = self.t
        try:
            argv, plan = self._checked(values)
            name = queue_name(values)
            item = self.queue.add("generate", "generate", name, argv, env={LANGUAGE_ENV: t.language},
                                  meta={"kind": "generate"})  # fmt: skip
        except GenerateInputError as error:
            return self._cannot(error.problems)
        except OSError as error:
            return self._cannot([error])
        what = t.t("ui.generate.queued_what", name=name, size=self._size(plan, "plan"))
        return Markdown(f"{queued_text(self.queue, item.id, t, what)}\n\n{self._command(argv)}")

    def use_run(self, run_id: Any, model: Any, y_axis: Any) -> dict[str, Any]:
        """A History run's saved files as the X axis (by field name, `message` too); Y becomes weight 0 to 1 when no
        Y is chosen yet; when no base model is given, the run's own, with its model type, part files and
        v-prediction."""
        t = self.t
        record = self.history.record(str(run_id or "")) if run_id else None
        saves = run_saves(record or {})
        if not saves:
            return {"message": t.t("ui.generate.run_no_saves") if run_id else t.t("ui.generate.pick_run")}
        filled: dict[str, Any] = {
            "message": md_t(t, "ui.generate.run_used", count=len(saves), run=record.get("id") if record else run_id),
            "x_axis": "network", "x_values": saves_axis_text(saves),
        }  # fmt: skip
        if not y_axis:
            filled.update(y_axis="weight", y_values="0, 0.5, 1")
        form = self.history.form(str(run_id)) or {}
        if not str(model or "").strip() and form.get("pretrained_model_name_or_path"):
            model_type = str(form.get("model_type") or "")
            offered = [name for _, name in model_type_choices(t, _image_model_types())]
            filled.update(pretrained_model_name_or_path=str(form["pretrained_model_name_or_path"]),
                          model_type=model_type if model_type in offered else "",
                          v_parameterization=bool(form.get("v_parameterization")),
                          **{name: str(form.get(name) or "") for name in part_files("")})  # fmt: skip
        return filled


def build_generate_page(app: PageValuesBlocks, t: Translator, browse: Browse, history: RunHistory = HISTORY,
                        runner: TrainingRunner = GENERATE_RUNNER, queue: RunQueue = QUEUE) -> GeneratePage:  # fmt: skip
    """The page's components and events in the current Blocks (inside a `TabPolling.tab`)."""
    page = GeneratePage(t, browse, history, runner, queue)
    gr.Markdown(f"## {t.t('ui.page.generate')}\n{t.t('ui.generate.intro')}")
    types = _image_model_types()
    with gr.Group():
        with gr.Row(equal_height=True):
            page.dropdown("model_type", [(t.t("ui.generate.auto_type"), ""), *model_type_choices(t, types)], flag="",
                          scale=1, min_width=260)  # fmt: skip
            page.path(
                "pretrained_model_name_or_path", False, help_text=t.t("ui.generate.help.model"), scale=4
            )
            page.fields["v_parameterization"] = gr.Checkbox(
                value=False,
                scale=1,
                min_width=200,
                **page._common("v_parameterization", help_text=t.t("ui.generate.help.v")),
            )
        with gr.Accordion(t.t("ui.generate.parts"), open=False, elem_id="generate_parts"), gr.Row():
            parts = {name: page.path(name, False, help_text=t.option_help(name), label=t.option_label(name),
                                     min_width=220) for name in part_files("")}  # fmt: skip
    with gr.Accordion(t.t("ui.generate.networks"), open=True, elem_id="generate_networks"):
        gr.Markdown(t.t("ui.generate.networks_info"))
        for first in range(1, NETWORK_SLOTS + 1, 2):  # two rows side by side
            with gr.Row(equal_height=True):
                for slot in (first, first + 1):
                    page.path(f"network_{slot}", False, flag="--network",
                              label=t.t("ui.generate.network", slot=slot), scale=4)  # fmt: skip
                    page.text(
                        f"weight_{slot}", flag="", label=t.t("ui.generate.weight"), scale=1, min_width=90
                    )
        page.text("embedding", lines=2, help_text=t.t("ui.generate.help.embedding"))
    page.text("prompt", lines=4, help_text=t.t("ui.generate.help.prompt"),
              placeholder="sks dog, in a park --n blurry --w 512 --h 512 --d 42 --l 7 --s 28")  # fmt: skip
    gr.Markdown(t.t("ui.generate.prompt_syntax"), elem_id="generate_prompt_syntax")
    page.text("negative_prompt")
    with gr.Row():
        for name in ("width", "height", "steps", "cfg"):
            page.text(name, min_width=110)
        page.dropdown("sampler", list(SAMPLER_CHOICES), min_width=160)
        page.text("seed", help_text=t.t("ui.generate.help.seed"), min_width=110)
    with gr.Row():
        page.text("images_per_prompt", min_width=110)
        page.text("clip_skip", min_width=110)
        page.dropdown("precision", ["fp16", "bf16", "float"], min_width=110)
        page.dropdown("device", ["cuda", "cpu"], allow_custom_value=True, min_width=110)
        page.path("outdir", True, help_text=t.t("ui.generate.help.outdir"), scale=3)
    axis_choices = [
        (t.t("ui.generate.axis.none"), ""),
        *((t.t(f"ui.generate.axis.{kind}"), kind) for kind in AXES),
    ]
    with gr.Accordion(t.t("ui.generate.grid"), open=True, elem_id="generate_grid_section"):
        gr.Markdown(t.t("ui.generate.grid_info"))
        with gr.Row(equal_height=False):
            run_chooser = gr.Dropdown(label=t.t("ui.generate.history_run"), choices=[], value=None, scale=4,
                                      elem_id="generate_history_run")  # fmt: skip
            refresh = gr.Button(
                t.t("ui.history.refresh"), scale=0, min_width=110, elem_id="generate_history_refresh"
            )
            use_button = gr.Button(
                t.t("ui.generate.use_run"), scale=0, min_width=280, elem_id="generate_use_run"
            )
        with gr.Row(equal_height=False):
            for axis in ("x", "y"):
                with gr.Column():
                    page.dropdown(f"{axis}_axis", axis_choices, flag="")
                    page.text(
                        f"{axis}_values", flag="", lines=3, help_text=t.t("ui.generate.help.axis_values")
                    )
    with gr.Row():
        start = gr.Button(t.t("ui.generate.run"), variant="primary", elem_id="generate_run")
        queue_button = gr.Button(t.t("ui.queue.add"), elem_id="generate_queue")
        stop = gr.Button(t.t("ui.stop"), variant="stop", elem_id="generate_stop")
    message = gr.Markdown(elem_id="generate_message")
    poll = build_tool_panel(t, "generate", runner)
    with gr.Row(equal_height=False):
        grid = gr.Image(label=t.t("ui.generate.grid_image"), type="filepath", interactive=False, scale=3, height=480,
                        elem_id="generate_grid_image")  # fmt: skip
        gallery = gr.Gallery(label=t.t("ui.generate.images"), columns=4, height=480, scale=2,
                             elem_id="generate_gallery")  # fmt: skip
    saved = gr.Markdown(elem_id="generate_saved")

    fields = page.fields
    inputs = set(fields.values())
    read = lambda data: {name: data.get(component) for name, component in fields.items()}  # noqa: E731
    wake_after(start.click(lambda data: page.generate(read(data)), inputs=inputs, outputs=message))
    queued = queue_button.click(lambda data: page.add_to_queue(read(data)), inputs=inputs, outputs=message)
    wake_after(queued)  # a queued run may start at once: the panel follows it
    wake_queue_line(queued)
    if poll.managed:  # one that starts later, while the page is open (an unmanaged timer ticks all the time)
        wake_on_queue_start("generate", poll.outputs(), queue)
    stop.click(lambda: t.t("ui.stopped_run") if runner.stop() else t.t("ui.nothing_to_stop"), outputs=message)

    def shown_parts(model_type: Any) -> list[Any]:
        wanted = part_files(str(model_type or ""))
        return [gr.Textbox(visible=name in wanted) for name in parts]

    def v_shown(model_type: Any) -> Any:
        return gr.Checkbox(visible=not model_type or declaration(str(model_type)).v_prediction is not None)

    type_box = fields["model_type"]
    type_box.change(shown_parts, inputs=type_box, outputs=list(parts.values()), show_progress="hidden")
    type_box.change(v_shown, inputs=type_box, outputs=fields["v_parameterization"], show_progress="hidden")

    def runs() -> Any:
        return gr.Dropdown(choices=network_runs(history, t), value=None)

    app.load(runs, outputs=run_chooser, show_progress="hidden")
    refresh.click(runs, outputs=run_chooser)
    filled_names = ["message", "x_axis", "x_values", "y_axis", "y_values", "pretrained_model_name_or_path",
                    "model_type", "v_parameterization", *parts]  # fmt: skip
    filled_boxes = [message if name == "message" else fields[name] for name in filled_names]

    def use(run_id: Any, model: Any, y_axis: Any) -> list[Any]:
        filled = page.use_run(run_id, model, y_axis)
        return [filled.get(name, gr.skip()) for name in filled_names]

    use_button.click(use, inputs=[run_chooser, fields["pretrained_model_name_or_path"], fields["y_axis"]],
                     outputs=filled_boxes)  # fmt: skip

    def results(last: Any) -> tuple[Any, ...]:
        """The finished run's grid and images, sent once per run."""
        snapshot = runner.snapshot(tail=0)
        found = run_results(snapshot)
        key = [snapshot.get("pid"), snapshot.get("status"), found.grid, found.images]
        # this tick stops the timer too when no run goes (as the panel's own tick does), so each can
        stopping = poll.after_tick(snapshot.get("status") == "running")
        if key == last:
            return gr.skip(), gr.skip(), gr.skip(), last, *stopping
        note = md_t(t, "ui.generate.saved_grid", path=found.grid) if found.grid else (
            md_t(t, "ui.generate.saved_images", count=len(found.images), path=snapshot.get("output"))
            if found.images else "")  # fmt: skip
        # a grid per prompt: the first above, the others in the gallery
        shown = [copy for path in [*found.images, *found.grids[1:]] if (copy := servable(path))]
        return found.grid and servable(found.grid), shown or None, note, key, *stopping

    seen = gr.State(None)
    poll.timer.tick(results, inputs=seen, outputs=[grid, gallery, saved, seen, *poll.outputs()],
                    show_progress="hidden", queue=False)  # fmt: skip

    def served() -> dict[Any, Any]:
        loaded = generate_form.load_form()
        values: dict[Any, Any] = {
            fields[name]: ("" if value is None else value) for name, value in loaded.items()
        }
        for name, box in fields.items():  # a saved choice the dropdown no longer offers: its default
            offered = [value for _, value in box.choices] if isinstance(box, gr.Dropdown) else []
            if offered and not box.allow_custom_value and name in loaded and loaded[name] not in offered:
                values[box] = DEFAULTS[name]
        model_type = str(values.get(fields["model_type"]) or "")
        wanted = part_files(model_type)
        values.update({box: gr.Textbox(visible=name in wanted, value=loaded.get(name) or "") for name, box in
                       parts.items()})  # fmt: skip
        return values

    app.values_when_served(served)
    return page
