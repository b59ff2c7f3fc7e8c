"""What the progress area and the preflight box show, made from plain dicts (`runner.snapshot()`, the
preflight JSON report). Pure formatting: no gradio, no processes; tested directly.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from gui.i18n import Translator
from gui.markdown_text import md_code, md_code_block, md_escape, md_t

FAILURE_LOG_LINES = 40


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_text(snapshot: Mapping[str, Any], t: Translator) -> str:
    status = snapshot.get("status", "idle")
    return t.t(f"ui.status.{status}", code=snapshot.get("exit_code"))


def progress_html(snapshot: Mapping[str, Any], t: Translator, ids: bool = True) -> str:
    """An HTML progress bar with step/total, epoch, ETA and loss under it (`ids`: element ids on the
    bar and its text, for the one main copy of the page)."""
    step, total = snapshot.get("step"), snapshot.get("total")
    cache = snapshot.get("cache")
    if cache and step is None and cache.get("total"):
        step, total = cache.get("done") or 0, cache["total"]
    fraction = min(1.0, step / total) if isinstance(step, int) and total else 0.0
    parts: list[str] = []
    if total:
        parts.append(t.t("ui.step_of", step=step or 0, total=total))
    if snapshot.get("epoch") and snapshot.get("epochs"):
        parts.append(t.t("ui.epoch_of", epoch=snapshot["epoch"], total=snapshot["epochs"]))
    if snapshot.get("status") == "running" and snapshot.get("eta_s") is not None:
        parts.append(t.t("ui.time_left", time=duration(snapshot["eta_s"])))
    if snapshot.get("avr_loss") is not None:
        parts.append(f"{t.t('ui.average_loss')}: {snapshot['avr_loss']:.4f}")
    if snapshot.get("elapsed_s") is not None:
        parts.append(t.t("ui.elapsed", time=duration(snapshot["elapsed_s"])))
    colour = {"failed": "#d9534f", "stopped": "#999999"}.get(snapshot.get("status", ""), "#3b82f6")
    caption = " · ".join(html.escape(part) for part in parts)
    fill_id, text_id = (' id="lora_progress_fill"', ' id="lora_progress_text"') if ids else ("", "")
    return (
        '<div class="lora-progress">'
        '<div style="background:var(--border-color-primary,#e5e7eb);border-radius:6px;height:18px;overflow:hidden">'
        f'<div{fill_id} style="width:{fraction * 100:.1f}%;height:100%;background:{colour}"></div>'
        f'</div><div{text_id} style="margin-top:4px">{caption}</div></div>'
    )


def loss_frame(snapshot: Mapping[str, Any], t: Translator) -> pd.DataFrame:
    """Long format for gr.LinePlot: one row per (step, series), NaN/inf losses left out."""
    history = snapshot.get("history") or {}
    rows = [
        {"step": step, "loss": value, "series": label}
        for column, label in (("loss", t.t("ui.loss")), ("avr_loss", t.t("ui.average_loss")))
        for step, value in zip(history.get("step", []), history.get(column, []), strict=False)
        if value is not None
    ]
    # Typed even when empty: LinePlot derives each axis' scale from its column's dtype.
    return pd.DataFrame(rows, columns=["step", "loss", "series"]).astype(
        {"step": "int64", "loss": "float64", "series": "string"}
    )


def sample_paths(snapshot: Mapping[str, Any]) -> list[str]:
    return [sample["path"] for sample in snapshot.get("samples", []) if sample.get("path")]


def failure_text(snapshot: Mapping[str, Any], t: Translator) -> str:
    """For a failed run: the exit code, the trainer's error messages and the end of the log (Markdown;
    the trainer's texts shown as written)."""
    if snapshot.get("status") != "failed":
        return ""
    lines = [f"### {md_t(t, 'ui.status.failed', code=snapshot.get('exit_code'))}"]
    for error in snapshot.get("errors", []):
        # Stripped: '**' next to a space would not make bold.
        lines.append(f"- **{md_escape(str(error.get('message')).strip())}**")
        lines += [f"  - {md_escape(item)}" for item in error.get("errors", [])]
        if error.get("hint"):
            lines.append(f"  - {md_escape(error['hint'])}")
    tail = snapshot.get("log_tail", [])[-FAILURE_LOG_LINES:]
    lines += ["", f"**{t.t('ui.log_tail')}**", md_code_block("\n".join(tail))]
    return "\n".join(lines)


def finished_text(snapshot: Mapping[str, Any], t: Translator) -> str:
    if snapshot.get("status") == "finished" and snapshot.get("output"):
        return md_t(t, "ui.saved_to", path=snapshot["output"])
    return ""


def _gib(value: object) -> str:
    return f"{float(value or 0) / 1024**3:.2f} GiB"


def _memory_lines(memory: Mapping[str, Any], t: Translator) -> list[str]:
    """The memory planner's estimate in the report (backend/training/memory_preflight.py): its peaks and parts."""
    if not memory:
        return []
    head = f"**{t.t('ui.preflight.memory')}**: "
    if memory.get("error"):
        return ["", head + md_t(t, "ui.preflight.memory_unavailable", reason=memory["error"])]
    if memory.get("device") == "cuda":
        peaks = md_t(t, "ui.preflight.memory_peaks", gpu=_gib(memory.get("gpu_peak_bytes")),
                     need=_gib(memory.get("card_need_bytes")), host=_gib(memory.get("host_peak_bytes")))  # fmt: skip
    else:
        peaks = md_t(t, "ui.preflight.memory_cpu", host=_gib(memory.get("host_peak_bytes")))
    parts = [f"{line.get('label')} {_gib(line.get('gpu_bytes') or line.get('host_bytes'))}"
             for line in memory.get("lines", []) if line.get("gpu_bytes") or line.get("host_bytes")]  # fmt: skip
    return ["", head + peaks, "", md_escape(" · ".join(parts))]


def preflight_markdown(report: Mapping[str, Any], t: Translator) -> str:
    """The trainer's `--preflight` JSON report as Markdown: verdict, errors, warnings, steps and buckets
    (every text of the report shown as written)."""
    ok = report.get("ok", False)
    lines = [f"### {t.t('ui.preflight_ok') if ok else t.t('ui.preflight_failed')}"]
    for key, icon in (("errors", "❌"), ("warnings", "⚠️")):
        items = report.get(key) or []
        if items:
            lines += ["", f"**{t.t(f'ui.preflight.{key}')}**", *(f"- {icon} {md_escape(item)}" for item in items)]
    model = report.get("model") or {}
    if model:
        about = md_escape(f"({model.get('family')}, {model.get('format')})")
        lines += ["", f"**{t.t('ui.preflight.model')}**: {md_code(model.get('path'))} {about}"]
    lines += _memory_lines(report.get("memory") or {}, t)
    leco = report.get("leco") or {}
    if leco:  # LECO: no dataset, the prompt file's settings instead
        lines += ["", md_t(t, "ui.preflight.leco", path=leco.get("prompts_file"), settings=leco.get("settings"))]
    dataset = report.get("dataset") or {}
    if dataset:
        lines += ["", md_t(
            t, "ui.preflight.steps",
            steps=dataset.get("total_steps"), epochs=dataset.get("epochs"),
            batches=dataset.get("num_batches_per_epoch"),
        )]  # fmt: skip
        for entry in dataset.get("datasets", []):
            lines += ["", f"| {t.t('ui.preflight.bucket')} | {t.t('ui.preflight.images')} | {t.t('ui.preflight.batches')} |",
                      "|---|---|---|"]  # fmt: skip
            for bucket in entry.get("buckets", []):
                width, height = bucket.get("resolution", ("?", "?"))
                cells = (f"{width}×{height}", bucket.get("count"), bucket.get("batches"))
                lines.append("| " + " | ".join(md_escape(cell) for cell in cells) + " |")
            for subset in entry.get("subsets", []):
                lines.append(
                    "\n" + md_t(
                        t, "ui.preflight.subset", folder=subset.get("image_dir"), images=subset.get("images"),
                        repeats=subset.get("num_repeats"), captions=subset.get("captions_found"),
                    )
                )  # fmt: skip
    return "\n".join(lines)
