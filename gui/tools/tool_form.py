"""Forms for the command-line tools (`python -m backend.tools.<name>`): declared as data, run as
subprocesses by a runner of their own.

A tool's flags are declared once, in backend/tools/flags/ (torch-free): the tool builds its argparse
parser from that declaration and `tool_spec` builds the form's `ToolArg`s from it, so a default, a
choice or a required field cannot differ between the two. The form pre-sets another value than the
tool's default only where the declaration says so (`Flag.gui_default`, with the reason).

`tool_argv` is pure (tested without a browser); `build_tool_form` renders one form with Run/Stop
buttons inside the current Blocks; `build_tool_panel` shows the tool runner's status, progress and
log. Tools run one at a time, beside (not instead of) a training run.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from backend.messages import LANGUAGE_ENV, msg
from backend.tools.flags.spec import TEXT_KINDS, Flag, ToolFlags
from gui.backend_process import venv_python
from gui.i18n import Translator
from gui.markdown_text import md_code, md_t
from gui.plain_text import plain_info
from gui.queue.queue_actions import queued_text
from gui.queue.queue_line import wake_queue_line
from gui.runs.log_view import log_box
from gui.runs.poll_timers import PollTimer, poll_timer, wake_after
from gui.runs.poll_updates import changed_only
from gui.runs.progress_view import failure_text, progress_html, status_text
from gui.runs.run_queue import QUEUE, RunQueue
from gui.runs.runner import RunnerBusyError, TrainingRunner

ArgKind = Literal["file", "folder", "save", "text", "int", "float", "bool", "choice", "list", "rows"]
TOOL_RUNNER = TrainingRunner()
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class ToolArg:
    name: str  # the flag without "--" (or the positional's name)
    kind: ArgKind
    default: Any = None  # shown initially; a value equal to it is still passed (tools' defaults may differ)
    choices: tuple[str, ...] = ()
    positional: bool = False
    required: bool = False
    row_size: int = 0  # kind "rows": values each line must hold (0: any number)
    custom: bool = False  # kind "choice": a value typed in is taken too (e.g. --device cuda:1)


@dataclass(frozen=True)
class ToolSpec:
    name: str  # the module: backend.tools.<name>
    args: tuple[ToolArg, ...]

    @property
    def module(self) -> str:
        return f"backend.tools.{self.name}"


def tool_arg(flag: Flag) -> ToolArg:
    """The form field of one declared flag. An optional choice without a default gets "" (shown as
    "not set": the tool's own default); a text flag with suggestions becomes a choice that also
    takes what is typed."""
    default = flag.form_default
    if flag.kind == "choice" and default is None:
        return ToolArg(flag.name, "choice", "", ("", *flag.choices), flag.positional, flag.required)
    if flag.kind in TEXT_KINDS and flag.suggestions:
        return ToolArg(flag.name, "choice", default, flag.suggestions, flag.positional, flag.required, custom=True)
    return ToolArg(flag.name, flag.kind, default, flag.choices, flag.positional, flag.required, len(flag.row))


def tool_spec(tool: ToolFlags) -> ToolSpec:
    """The form of a declared tool: its flags that the GUI offers (`Flag.gui`), in declaration order."""
    return ToolSpec(tool.name, tuple(tool_arg(flag) for flag in tool.flags if flag.gui))


class ToolInputError(ValueError):
    """A form value the tool cannot take; the message names the field."""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def split_words(text: str) -> list[str]:
    r"""Words of a line split like a shell line (quotes group), but backslashes stay: Windows paths
    such as C:\loras\a.safetensors survive. Raises ValueError for an unclosed quote."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split, lexer.escape = True, ""
    return list(lexer)


def _rows(arg: ToolArg, value: Any) -> list[list[str]]:
    """Kind "rows": each non-empty line is one use of a repeatable flag with several values
    (`--concept SRC INSTANCE CLASS`), split by `split_words`."""
    rows = []
    for number, line in enumerate(_text(value).splitlines(), 1):
        try:
            row = split_words(line)
        except ValueError as error:
            raise ToolInputError(msg(
                "gui.tool.row_unreadable", "{name}, line {line}: {error}", name=arg.name, line=number, error=str(error)
            )) from None  # fmt: skip
        if row and arg.row_size and len(row) != arg.row_size:
            raise ToolInputError(msg(
                "gui.tool.row_size",
                "{name}, line {line}: expects {expected} values, got {count} ({text}); quote values that contain spaces",
                name=arg.name, line=number, expected=arg.row_size, count=len(row), text=line.strip(),
            ))  # fmt: skip
        if row:
            rows.append(row)
    return rows


def tool_argv(spec: ToolSpec, values: Mapping[str, Any], python: str | None = None) -> list[str]:
    """The argument list that runs `spec` with the form's `values` (empty fields are left out)."""
    positional: list[str] = []
    flags: list[str] = []
    missing: list[str] = []
    for arg in spec.args:
        value = values.get(arg.name)
        if arg.kind == "bool":
            if value:
                flags.append(f"--{arg.name}")
            continue
        if arg.kind == "rows":
            rows = _rows(arg, value)
            if not rows and arg.required:
                missing.append(arg.name)
            flags += [item for row in rows for item in (f"--{arg.name}", *row)]
            continue
        if arg.kind == "list":
            try:
                items = split_words(_text(value).replace("\n", " "))
            except ValueError as error:
                raise ToolInputError(msg("gui.tool.list_unreadable", "{name}: {error}", name=arg.name, error=str(error))) from None
        else:
            items = [_text(value)] if _text(value) else []
        if arg.kind in ("int", "float") and items:
            try:
                number = float(items[0])
            except ValueError:
                raise ToolInputError(msg(
                    "gui.tool.number_expected", "{name}: expects a number, got {value}", name=arg.name, value=repr(items[0])
                )) from None  # fmt: skip
            items = [str(int(number)) if arg.kind == "int" and number.is_integer() else items[0]]
        if not items:
            if arg.required:
                missing.append(arg.name)
            continue
        if arg.positional:
            positional += items
        else:
            flags += [f"--{arg.name}", *items]
    if missing:
        raise ToolInputError(msg("gui.tool.required", "required: {names}", names=", ".join(missing)))
    return [python or venv_python(), "-m", spec.module, *positional, *flags]


@dataclass
class ToolForm:
    spec: ToolSpec
    fields: dict[str, gr.components.Component]
    message: gr.Markdown

    def read(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        return {name: data.get(component) for name, component in self.fields.items()}


def label(t: Translator, spec: ToolSpec, arg: ToolArg) -> str:
    shown = arg.name if arg.positional else f"--{arg.name}"
    return f"{t.t(f'ui.toolarg.{spec.name}.{arg.name}')} ({shown})"


def _widget(t: Translator, spec: ToolSpec, arg: ToolArg, elem_id: str) -> gr.components.Component:
    common: dict[str, Any] = {
        "label": label(t, spec, arg), "info": plain_info(t.t(f"ui.toolhelp.{spec.name}.{arg.name}")),
        "elem_id": elem_id, "elem_classes": ["opt-field"],
    }  # fmt: skip
    if arg.kind == "bool":
        return gr.Checkbox(value=bool(arg.default), **common)
    if arg.kind == "choice":
        # "" is the tool's own default: shown as "not set" rather than as a blank entry.
        choices = [(t.t("ui.not_set") if choice == "" else choice, choice) for choice in arg.choices]
        return gr.Dropdown(choices=choices, value=arg.default, allow_custom_value=arg.custom, **common)
    value = "" if arg.default is None else str(arg.default)
    return gr.Textbox(value=value, lines={"list": 2, "rows": 3}.get(arg.kind, 1), **common)


def build_tool_form(
    t: Translator,
    spec: ToolSpec,
    browse: Callable[[str, bool], str] | None,
    runner: TrainingRunner = TOOL_RUNNER,
    per_row: int = 3,
) -> ToolForm:
    """The fields of `spec` and its Run/Stop buttons (elem ids `tool_<name>_<arg>`, `tool_<name>_run`)."""
    fields: dict[str, gr.components.Component] = {}
    args = list(spec.args)
    for start in range(0, len(args), per_row):
        with gr.Row(equal_height=False):
            for arg in args[start : start + per_row]:
                with gr.Column(min_width=240):
                    component = _widget(t, spec, arg, f"tool_{spec.name}_{arg.name}")
                    if browse is not None and arg.kind in ("file", "folder", "save"):
                        button = gr.Button(t.t("ui.browse"), size="sm", elem_id=f"browse_{spec.name}_{arg.name}")
                        folder = arg.kind == "folder"
                        button.click(lambda current, f=folder: browse(current, f), inputs=component, outputs=component)
                fields[arg.name] = component
    with gr.Row():
        run = gr.Button(t.t("ui.tool_run"), variant="primary", elem_id=f"tool_{spec.name}_run")
        queue = gr.Button(t.t("ui.queue.add"), elem_id=f"tool_{spec.name}_queue")
        stop = gr.Button(t.t("ui.stop"), variant="stop", elem_id=f"tool_{spec.name}_stop")
    message = gr.Markdown(elem_id=f"tool_{spec.name}_message")
    form = ToolForm(spec, fields, message)
    inputs = set(fields.values())
    wake_after(run.click(lambda data: start_tool(spec, form.read(data), t, runner), inputs=inputs, outputs=message))
    queued = queue.click(lambda data: queue_tool(spec, form.read(data), t), inputs=inputs, outputs=message)
    wake_after(queued)  # a queued run may start at once: the tool panel follows it
    wake_queue_line(queued)
    stop.click(lambda: t.t("ui.stopped_run") if runner.stop() else t.t("ui.nothing_to_stop"), outputs=message)
    return form


def queue_tool(spec: ToolSpec, values: Mapping[str, Any], t: Translator, queue: RunQueue = QUEUE) -> str:
    """Queue the tool run (gui/runs/run_queue.py), its form checked now as Run checks it."""
    try:
        argv = tool_argv(spec, values)
        item = queue.add("tool", spec.name, _output_name(spec, values), argv, env={LANGUAGE_ENV: t.language})
    except (ToolInputError, OSError) as error:
        return md_t(t, "ui.tool_bad_input", error=error)
    return queued_text(queue, item.id, t, shlex.join(argv[2:]))


def _output_name(spec: ToolSpec, values: Mapping[str, Any]) -> str:
    """What the Queue page names a tool run by: the file it saves, else its first file or folder."""
    for kinds in (("save",), ("file", "folder")):
        for arg in spec.args:
            if arg.kind in kinds and _text(values.get(arg.name)):
                return Path(_text(values.get(arg.name)).split()[0]).name
    return spec.name


def start_tool(spec: ToolSpec, values: Mapping[str, Any], t: Translator, runner: TrainingRunner = TOOL_RUNNER) -> str:
    try:
        argv = tool_argv(spec, values)
        runner.start(argv, env={LANGUAGE_ENV: t.language})  # the tool's messages in the UI language
    except ToolInputError as error:
        return md_t(t, "ui.tool_bad_input", error=error)
    except RunnerBusyError:
        return t.t("ui.tool_busy")
    except OSError as error:
        return md_t(t, "ui.tool_bad_input", error=error)
    return md_t(t, "ui.tool_started", command=md_code(shlex.join(argv[1:])))


def build_tool_panel(t: Translator, prefix: str, runner: TrainingRunner = TOOL_RUNNER) -> PollTimer:
    """Status, progress and the log of the tool runner (elem ids `<prefix>_status`, `_progress`, `_log`); its poll
    timer, for a page that shows more of the run on the same ticks (the Generate page's images)."""
    with gr.Group():
        status = gr.Textbox(label=t.t("ui.status"), interactive=False, elem_id=f"{prefix}_status")
        bar = gr.HTML(progress_html({}, t), elem_id=f"{prefix}_progress")
        outcome = gr.Markdown(elem_id=f"{prefix}_outcome")
    log = log_box(t.t("ui.log"), f"{prefix}_log", lines=12, max_lines=30)

    seen = gr.State(None)  # what was sent last: (pid, log lines) and the texts; each is re-sent only when it changed

    def on_tick(last: dict[str, Any] | None) -> tuple[Any, ...]:
        last = last or {}
        snapshot = runner.snapshot(tail=400)
        now = {"log": [snapshot.get("pid"), snapshot["log_lines"]],
               "texts": [status_text(snapshot, t), progress_html(snapshot, t), failure_text(snapshot, t)]}
        log_text = "\n".join(snapshot["log_tail"]) if now["log"] != last.get("log") else gr.skip()
        running = snapshot.get("status") == "running"
        return *changed_only(now["texts"], last.get("texts")), log_text, now, *poll.after_tick(running)

    poll = poll_timer(POLL_SECONDS)
    poll.timer.tick(on_tick, inputs=seen, outputs=[status, bar, outcome, log, seen, *poll.outputs()],
                    show_progress="hidden", queue=False)  # fmt: skip
    return poll

