"""What every training command does: parse and validate options, preflight, train, report.

Exit codes: 0 trained (or preflight passed), 1 a problem with the run (preflight errors, a failure
during training), 2 invalid options. Every failure is also a progress `error` line, so the GUI
can show it without parsing logs. A run stopped for a reason the user can act on (`RunStopped`: the
loss diverged, the output folder refused a save, a state that does not fit; or a model or dataset
error found while the run is built, e.g. a file changed or damaged since preflight) says so in words,
with no traceback; an unexpected exception keeps its traceback on stderr for debugging.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

from backend.data.errors import DatasetError
from backend.messages import msg
from backend.models.errors import ModelMismatchError
from backend.options import parse_command_line
from backend.training.console_log import ConsoleLogConfig, configure_console_log
from backend.training.leftovers import leftover_folders, remove_leftovers
from backend.training.preflight import RunPlan, build_plan, is_main_process
from backend.training.progress import ProgressReporter
from backend.training.run_errors import RunStopped
from backend.training.sample_prompts import PromptFileError

logger = logging.getLogger(__name__)


def _unexpected_preflight_failure(command: str, exc: Exception) -> RunPlan:
    """A check that crashed is reported like any other problem (traceback on stderr for debugging)."""
    traceback.print_exc()
    plan = RunPlan(command)
    plan.errors.append(msg(
        "preflight.crashed", "the checks before training failed unexpectedly ({error}); the traceback above is for "
        "a bug report. Check the files and folders the options name", error=f"{type(exc).__name__}: {exc}",
    ))
    plan.report.update(command=command, ok=False, errors=plan.errors, warnings=plan.warnings)
    return plan


def _clean_leftovers(output_dir: str) -> None:
    """Temporary files of interrupted saves in the output folder (ours only) go, and the log says which."""
    found = remove_leftovers(leftover_folders(output_dir))
    for leftover, final in found.restored:
        logger.warning(msg("run.leftover_restored", "{path} was missing (a run was killed while replacing it): "
                           "restored it from {leftover}", path=final, leftover=leftover))
    for path in found.removed:
        logger.info(msg("run.leftover_removed", "removed the leftover of an interrupted save: {path}", path=path))
    for path in found.recent:
        logger.warning(msg("run.leftover_recent", "left {path} in place: it looks like a save in progress of "
                           "another run", path=path))


def _report_stop(reporter: ProgressReporter, stop: RunStopped) -> int:
    print(msg("run.error_line", "error: {message}", message=stop.message) + (f"\n{stop.hint}" if stop.hint else ""),
          file=sys.stderr)
    reporter.error(message=stop.message, hint=stop.hint)
    reporter.end(reason="error", output=stop.output, step=stop.step)
    return 1


def run_command(command: str, argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    main = is_main_process()  # under accelerate launch every process gets here; one reports
    try:
        args = parse_command_line(command, argv)
    except SystemExit as exit_:
        if exit_.code:  # the problems are on stderr; tell a GUI reading progress lines too
            ProgressReporter(enabled=main).error(
                message=msg("run.invalid_options", "invalid options (see the messages above)"), hint=None)
        raise
    configure_console_log(ConsoleLogConfig.from_args(args))
    if main and not args.preflight:  # before the checks: a state folder restored here can be resumed from
        _clean_leftovers(args.output_dir)
    try:
        plan = build_plan(args, command)
    except Exception as exc:
        plan = _unexpected_preflight_failure(command, exc)
    if args.preflight:
        if main:
            print(json.dumps(plan.report, indent=2, ensure_ascii=False))
        return 0 if plan.ok else 1
    for warning in plan.warnings:
        logging.warning(warning)
    if not plan.ok:
        errors = "\n".join(f"  - {error}" for error in plan.errors)
        print(msg("run.cannot_start_list", "error: the run cannot start:\n{errors}", errors=errors), file=sys.stderr)
        ProgressReporter(enabled=main).emit(
            "error", message=msg("run.cannot_start", "the run cannot start"), hint=None, errors=plan.errors)
        return 1

    if args.debug_dataset:  # the batches as training would see them, without loading the model
        from backend.training.debug_dataset import DebugDatasetConfig, show_dataset
        from backend.training.run_length import LengthConfig

        return show_dataset(DebugDatasetConfig.from_args(args), LengthConfig.from_args(args),
                            plan.dataset_specs) if main else 0

    # Heavy imports only once the options and the data have been found sound.
    from backend.models.tokenizers import TokenizerUnavailableError
    from backend.networks.network import NetworkWeightsError
    from backend.training.loop import Trainer
    from backend.training.optimizers import OptimizerUnavailable
    from backend.training.run_setup import build_run

    # Problems with the user's files or setup that preflight checks but that can still appear while the run
    # is built (a file changed or damaged since, a component that fails to load): said like RunStopped.
    user_errors = (ModelMismatchError, DatasetError, PromptFileError, TokenizerUnavailableError, OptimizerUnavailable,
                   NetworkWeightsError)

    reporter = ProgressReporter(enabled=main)
    try:
        run = build_run(args, command, plan)
        reporter = run.reporter
        Trainer(run).train()
    except KeyboardInterrupt:
        reporter.end(reason="interrupted", output=None)
        return 130
    except RunStopped as stop:
        return _report_stop(reporter, stop)
    except user_errors as exc:  # each message names the file or option and the fix
        return _report_stop(reporter, RunStopped(str(exc)))
    except Exception as exc:  # reported to the GUI as a progress line, with the traceback on stderr
        traceback.print_exc()
        reporter.error(message=f"{type(exc).__name__}: {exc}", hint=None)
        return 1
    return 0
