"""What every training command does: parse and validate options, preflight, train, report.

Exit codes: 0 trained (or preflight passed), 1 a problem with the run (preflight errors, a failure
during training), 2 invalid options. Every failure is also a progress `error` line, so the GUI
can show it without parsing logs.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

from backend.options import parse_command_line
from backend.training.preflight import build_plan, is_main_process
from backend.training.progress import ProgressReporter


def run_command(command: str, argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    main = is_main_process()  # under accelerate launch every process gets here; one reports
    try:
        args = parse_command_line(command, argv)
    except SystemExit as exit_:
        if exit_.code:  # the problems are on stderr; tell a GUI reading progress lines too
            ProgressReporter(enabled=main).error(message="invalid options (see the messages above)", hint=None)
        raise
    plan = build_plan(args, command)
    if args.preflight:
        if main:
            print(json.dumps(plan.report, indent=2, ensure_ascii=False))
        return 0 if plan.ok else 1
    for warning in plan.warnings:
        logging.warning(warning)
    if not plan.ok:
        errors = "\n".join(f"  - {error}" for error in plan.errors)
        print(f"error: the run cannot start:\n{errors}", file=sys.stderr)
        ProgressReporter(enabled=main).emit("error", message="the run cannot start", hint=None, errors=plan.errors)
        return 1

    # Heavy imports only once the options and the data have been found sound.
    from backend.training.loop import Trainer
    from backend.training.run_setup import build_run

    reporter = ProgressReporter(enabled=main)
    try:
        run = build_run(args, command, plan)
        reporter = run.reporter
        Trainer(run).train()
    except KeyboardInterrupt:
        reporter.end(reason="interrupted", output=None)
        return 130
    except Exception as exc:  # reported to the GUI as a progress line, with the traceback on stderr
        traceback.print_exc()
        reporter.error(message=f"{type(exc).__name__}: {exc}", hint=None)
        return 1
    return 0
