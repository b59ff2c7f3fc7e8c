"""`train_video`: parse finetrainers' options, check the run before loading anything, train, report.

Reads like the image commands (backend/training/command.py): the same exit codes (0 trained or the
preflight passed, 1 a problem with the run, 2 invalid options), progress lines and messages. The run
itself is the image trainer's (backend/training: run_setup, loop) over the video datasets
(video/dataset.py) with finetrainers' options translated (video/translate.py) and finetrainers' file
names (video/outputs.py).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

from backend.messages import msg
from backend.options import parse_command_line
from backend.options.schema import VIDEO_COMMANDS
from backend.training.preflight import is_main_process, world_size
from backend.training.progress import ProgressReporter
from backend.training.run_errors import RunStopped
from backend.video.preflight import VideoPlan, build_video_plan

COMMAND = VIDEO_COMMANDS[0]
logger = logging.getLogger(__name__)


def _refuse(plan: VideoPlan, main: bool) -> int:
    errors = "\n".join(f"  - {error}" for error in plan.errors)
    print(msg("run.cannot_start_list", "error: the run cannot start:\n{errors}", errors=errors), file=sys.stderr)
    ProgressReporter(enabled=main).emit("error", message=msg("run.cannot_start", "the run cannot start"), hint=None,
                                        errors=plan.errors)
    return 1


def run_video_command(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    main = is_main_process()
    try:
        args = parse_command_line(COMMAND, argv)
    except SystemExit as exit_:
        if exit_.code:
            ProgressReporter(enabled=main).error(
                message=msg("run.invalid_options", "invalid options (see the messages above)"), hint=None)
        raise
    try:
        plan = build_video_plan(args)
    except Exception as exc:  # a check that crashed is reported like any problem, traceback for a bug report
        traceback.print_exc()
        plan = VideoPlan(COMMAND)
        plan.errors.append(msg("preflight.crashed", "the checks before training failed unexpectedly ({error}); the "
                               "traceback above is for a bug report. Check the files and folders the options name",
                               error=f"{type(exc).__name__}: {exc}"))
    if getattr(args, "preflight", False):
        if main:
            print(json.dumps(plan.report, indent=2, ensure_ascii=False))
        return 0 if plan.ok else 1
    for warning in plan.warnings:
        logger.warning(warning)
    if not plan.ok:
        return _refuse(plan, main)
    return _train(args, plan)


def _train(args: Any, plan: VideoPlan) -> int:
    from backend.data.errors import DatasetError
    from backend.models.errors import ModelMismatchError
    from backend.training.loop import Trainer
    from backend.training.optimizers import OptimizerUnavailable
    from backend.video.network import TargetModulesError
    from backend.video.run_setup import build_video_run

    reporter = ProgressReporter(enabled=is_main_process())
    try:
        run = build_video_run(args, plan, world_size())
        reporter = run.reporter
        Trainer(run).train()
        if getattr(args, "push_to_hub", False) and run.accelerator.is_main_process:
            from backend.video.upload import push_output

            url = push_output(args.output_dir, args.hub_model_id, getattr(args, "hub_token", None))
            logger.info(msg("video.uploaded", "uploaded {folder} to {url}", folder=args.output_dir, url=url))
    except KeyboardInterrupt:
        reporter.end(reason="interrupted", output=None)
        return 130
    except RunStopped as stop:
        return _report_stop(reporter, stop.message, stop.hint, stop.output, stop.step)
    except (ModelMismatchError, DatasetError, OptimizerUnavailable, TargetModulesError) as exc:
        return _report_stop(reporter, str(exc), None, None, None)
    except Exception as exc:
        traceback.print_exc()
        reporter.error(message=f"{type(exc).__name__}: {exc}", hint=None)
        return 1
    return 0


def _report_stop(reporter: ProgressReporter, message: str, hint: str | None, output: Any, step: Any) -> int:
    print(msg("run.error_line", "error: {message}", message=message) + (f"\n{hint}" if hint else ""), file=sys.stderr)
    reporter.error(message=message, hint=hint)
    reporter.end(reason="error", output=output, step=step)
    return 1
