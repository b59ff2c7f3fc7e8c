"""The training loop: one algorithm for every model family and training method.

Per batch (step.py): latents (cached or encoded), then the family's forward (its objective draws the
noisy input and time, the model predicts under text conditioning and the family's extras, the
objective says the target and weights), the loss, backward. Every `gradient_accumulation_steps` batches (and at the
end of an epoch): gradients averaged across processes, clipped, one optimizer and scheduler step,
then progress, logs, saves and samples.

Every random draw of a sample comes from (seed, epoch, the sample's index in the epoch's global
order): its augmentation and caption in the dataset, its VAE posterior sample, noise and timestep
from a generator of its own (`step.sample_generators`). Per-step choices (DyLoRA's block) come from
(seed, epoch, global batch). Batches are planned at the global batch size and split among the
processes (data/shares.py), so N processes with batch b train what one process with batch N x b
trains, and a resumed run sees exactly the batches and noise the uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from pathlib import Path

import torch
from accelerate.utils import broadcast_object_list

from backend.finite_weights import WeightProblems
from backend.messages import msg
from backend.training.checkpoints import (
    TrainState,
    epoch_save_to_prune,
    remove_quietly,
    save_state,
    step_save_to_prune,
)
from backend.training.initial_step import start_position
from backend.training.metadata import (
    progress_metadata,
)
from backend.training.method import TrainingMethod
from backend.training.optimizers import set_optimizer_train_mode
from backend.training.output_space import save_counts, space_problem, state_bytes
from backend.training.progress import LossRecorder
from backend.training.rescue import RescuingWriter, failure_reason, is_write_failure, output_hint
from backend.training.resume_position import resume_skip
from backend.training.run_errors import (
    OutputNotWritable,
    RunStopped,
    TrainingDiverged,
    divergence_causes,
    loss_name,
)
from backend.training.run_metadata import run_metadata
from backend.training.run_setup import TrainingRun
from backend.training.sample_prompts import SamplePrompt, load_sample_prompts, should_sample
from backend.training.sharded import accelerator_backend
from backend.training.step import average_gradients, batch_loss, sample_generators, seed_step_random
from backend.training.step_reports import StepRecord, StepReports, report_lag

logger = logging.getLogger(__name__)


def method_prompt(method: TrainingMethod, prompt: SamplePrompt) -> SamplePrompt:
    """A sample prompt as the method's text encoders read it (Textual Inversion's word -> its tokens)."""
    negative = prompt.negative_prompt
    return dataclasses.replace(prompt, prompt=method.prompt_text(prompt.prompt),
                               negative_prompt=None if negative is None else method.prompt_text(negative))


class Trainer:
    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        prompt_file = run.sampling.sample_prompts
        self.prompts = run.prompts if run.prompts is not None else [
            method_prompt(run.method, prompt) for prompt in (load_sample_prompts(prompt_file) if prompt_file else [])]
        self.metadata = run_metadata(run) if run.file_metadata else {}
        self.recorder = LossRecorder()
        self.reports = StepReports(self._publish_step, report_lag(run.accelerator.device))
        state = run.resume_state
        self.global_step = state.global_step if state else 0
        self.start_epoch = state.epoch if state else 1
        # Global batches of the saved epoch already done, in this run's plan (another batch size: a share).
        main = run.accelerator.is_main_process
        self.skip_batches = resume_skip(state, run.group, run.resume_folder, warn=main) if state else 0
        if run.initial.given:  # --initial_step/--initial_epoch win over the state's position (initial_step.py)
            start = start_position(run.initial, len(run.group), run.step_config.gradient_accumulation_steps)
            self.global_step, self.start_epoch, self.skip_batches = start.global_step, start.epoch, start.skip_batches
        self.output_dir = Path(run.saving.output_dir)  # as given: saves move to a rescue folder if it fails
        self.saves = RescuingWriter(self.output_dir, run.names.output_name, self._move_saves)
        self.last_save: tuple[Path, int] | None = None  # the newest model file written (all weights finite)
        self._weights_checked_at: tuple[int, torch.dtype | None] | None = None

    # --- metadata and saving ------------------------------------------------------------------
    def save_model(self, path: Path, *, epoch: int, final: bool) -> Path:
        """Write the model (every process takes part); returns where it went (a rescue folder if `path` failed)."""
        self.reports.flush()  # raises TrainingDiverged for a non-finite loss before anything is written
        run = self.run
        run.method.before_save(run.accelerator)  # on every process: the file holds what every process holds
        self.ensure_finite_weights(path, run.save_dtype)
        saved = path
        if run.accelerator.is_main_process:
            metadata = progress_metadata(self.metadata, epoch=epoch, steps=self.global_step, finished=final)
            saved = self.saves.write(
                path, lambda target: run.method.save(target, run.save_dtype, metadata),
                run.method.saved_bytes(run.save_dtype), self.global_step,
            )
            self.last_save = (saved, self.global_step)
            run.reporter.checkpoint(path=str(saved), kind="model", step=self.global_step, epoch=epoch)
            if run.uploader is not None:
                run.uploader.upload(saved, wait=final)
        self._share_rescue_dir()
        run.accelerator.wait_for_everyone()
        return saved

    def finish_uploads(self) -> None:
        """Wait for --async_upload's uploads; failed ones were logged, and the end says how many."""
        if self.run.uploader is None:
            return
        failed = self.run.uploader.finish()
        if failed:
            logger.warning(msg("hub.uploads_failed", "{count} of the run's uploads to {repo} failed (see above); "
                               "those files are in the output folder", count=len(failed),
                               repo=self.run.uploader.config.huggingface_repo_id))

    def save_training_state(self, folder: Path, *, epoch: int, batches_done: int) -> None:
        run = self.run
        self.ensure_finite_weights(folder, None)
        state = TrainState(self.global_step, epoch, batches_done, run.seed, run.state_record,
                           processes=run.accelerator.num_processes,
                           batch_sizes=tuple(dataset.batch_size for dataset in run.group.datasets),
                           batches_in_epoch=len(run.group))
        if run.accelerator.num_processes > 1:  # every process writes its part into the same folder: no rescue
            try:
                save_state(run.accelerator, folder, state)
            except Exception as exc:
                if not is_write_failure(exc):
                    raise
                reason = failure_reason(exc)
                raise OutputNotWritable(
                    msg("run.state_not_rescued", "could not save the training state {folder} ({reason}). With several "
                        "processes a training state is not saved to a rescue folder, so the run stopped here; the "
                        "model files saved before stay where they are.", folder=folder, reason=reason),
                    hint=output_hint(reason), step=self.global_step,
                    output=str(self.last_save[0]) if self.last_save else None,
                ) from exc
        else:
            folder = self.saves.write(folder, lambda target: save_state(run.accelerator, target, state),
                                      self._state_bytes(), self.global_step)
        run.reporter.checkpoint(path=str(folder), kind="state", step=self.global_step, epoch=epoch)
        if run.uploader is not None:
            run.uploader.upload(folder, state=True)

    # --- what is never saved: non-finite weights ----------------------------------------------
    def _last_good(self) -> str:
        """What is left of the run. The newest save is only known to hold finite weights, not good ones:
        a run that diverges slowly may have written useless (huge but finite) weights before it."""
        if self.last_save is None:
            return msg("run.diverged.nothing_saved", "This run saved no model before it; files already in "
                       "{folder} were left as they were.", folder=self.output_dir)
        path, step = self.last_save
        return msg("run.diverged.last_finite_save", "The newest save with finite weights is {path} (step {step}); "
                   "check its samples before using it. Files already in {folder} were left as they were.",
                   path=path, step=step, folder=self.output_dir)

    def _check_loss(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            return
        raise TrainingDiverged(
            msg("run.diverged.loss", "training diverged at step {step}: the loss is {loss}. The run was stopped and "
                "nothing from step {step} on was saved. {kept}", step=step, loss=loss_name(loss),
                kept=self._last_good()),
            hint=self._divergence_causes(), step=step,
        )

    def _divergence_causes(self) -> str:
        return divergence_causes(self.run.divergence, self.run.optimizer_setup.name)

    def ensure_finite_weights(self, path: Path, dtype: torch.dtype | None) -> None:
        """Refuse to save (on every process alike) when a trained weight is NaN/infinite, or becomes so in `dtype`."""
        run = self.run
        key = (self.global_step, dtype)
        if self._weights_checked_at == key:  # the model and the state of one step: checked once
            return
        problems = run.method.weight_problems(dtype)
        bad = bool(problems)
        if run.accelerator.num_processes > 1:  # sharded weights: any process's finding stops all of them
            flag = torch.tensor([1.0 if bad else 0.0], device=run.accelerator.device)
            bad = bool(run.accelerator.reduce(flag, "sum").item() > 0)
        if bad:
            raise self._weights_error(path, problems)
        self._weights_checked_at = key

    def _weights_error(self, path: Path, problems: WeightProblems) -> RunStopped:
        step = self.global_step
        found = problems.describe() or msg("run.diverged.other_process", "another process found non-finite weights")
        if problems.nonfinite or not problems.overflow:
            return TrainingDiverged(
                msg("run.diverged.weights", "training diverged by step {step}: the trained weights are no longer "
                    "finite ({found}). The run was stopped and {path} was not written. {kept}",
                    step=step, found=found, path=path, kept=self._last_good()),
                hint=self._divergence_causes(), step=step,
            )
        return RunStopped(
            msg("run.weights_overflow", "the trained weights at step {step} do not fit --save_precision {precision} "
                "({found}). {path} was not written. {kept}", step=step, precision=self.run.saving.save_precision,
                found=found, path=path, kept=self._last_good()),
            hint=msg("run.weights_overflow_hint", "Save in a wider precision (--save_precision bf16 or float). Weights "
                     "this large often mean the run is diverging: consider a lower learning rate."),
            step=step,
        )

    # --- saves the output folder refuses go to a rescue folder ---------------------------------
    def _state_bytes(self) -> int:
        run = self.run
        trained = sum(p.numel() for p in run.method.trainable_parameters())
        return state_bytes(trained, run.optimizer_setup.name, run.method.ema is not None)

    def _share_rescue_dir(self) -> None:
        """Every process saves into the same folders: the main process's switch to a rescue folder is shared."""
        if self.run.accelerator.num_processes == 1:
            return
        [folder] = broadcast_object_list([str(self.saves.folder) if self.saves.folder else None])
        if folder and self.saves.folder is None:
            self.saves.use(Path(folder))

    def _move_saves(self, folder: Path) -> None:
        self.run.names = dataclasses.replace(self.run.names, output_dir=folder)

    def check_free_space(self) -> None:
        """Before the first step, with the exact sizes: is there room for every file the run keeps?"""
        run = self.run
        problem = space_problem(
            run.saving.output_dir, save_counts(run.saving, run.total_steps, run.num_epochs),
            run.method.saved_bytes(run.save_dtype), self._state_bytes(),
        )
        if problem:
            raise OutputNotWritable(problem, hint=None, step=self.global_step)

    def _prune(self, path: Path) -> None:
        if self.run.accelerator.is_main_process:
            for written in self.run.method.written_paths(path):
                remove_quietly(written)

    def after_step_saves(self, epoch: int, batches_done: int) -> None:
        saving, names, step = self.run.saving, self.run.names, self.global_step
        if not saving.save_every_n_steps or step % saving.save_every_n_steps or step >= self.run.total_steps:
            return
        self.save_model(names.model_for_step(step), epoch=epoch, final=False)
        if saving.save_state:
            self.save_training_state(names.state_for_step(step), epoch=epoch, batches_done=batches_done)
        old = step_save_to_prune(step, saving.save_every_n_steps, saving.save_last_n_steps)
        if old:
            self._prune(names.model_for_step(old))
        old_state = step_save_to_prune(step, saving.save_every_n_steps, saving.state_last_n_steps)
        if old_state:
            self._prune(names.state_for_step(old_state))

    def after_epoch_saves(self, epoch: int) -> None:
        saving, names = self.run.saving, self.run.names
        if not saving.save_every_n_epochs or epoch % saving.save_every_n_epochs or epoch >= self.run.num_epochs:
            return
        self.save_model(names.model_for_epoch(epoch), epoch=epoch, final=False)
        if saving.save_state:
            # The state after a whole epoch resumes at the start of the next one.
            self.save_training_state(names.state_for_epoch(epoch), epoch=epoch + 1, batches_done=0)
        old = epoch_save_to_prune(epoch, saving.save_every_n_epochs, saving.save_last_n_epochs)
        if old:
            self._prune(names.model_for_epoch(old))
        old_state = epoch_save_to_prune(epoch, saving.save_every_n_epochs, saving.state_last_n_epochs)
        if old_state:
            self._prune(names.state_for_epoch(old_state))

    # --- samples --------------------------------------------------------------------------------
    def maybe_sample(self, epoch: int | None) -> None:
        sampling = self.run.sampling
        if not self.prompts or not should_sample(
            step=self.global_step, epoch=epoch, every_n_steps=sampling.sample_every_n_steps,
            every_n_epochs=sampling.sample_every_n_epochs, at_first=sampling.sample_at_first,
        ):
            return
        self.reports.flush()
        from backend.training.sampling import generate_samples  # diffusers pipelines: load on first use

        run = self.run
        run.accelerator.wait_for_everyone()
        if run.accelerator.is_main_process:
            set_optimizer_train_mode(run.optimizer, False)
            try:
                generate_samples(
                    run.spec, run.components, self.prompts, sampler=sampling.sample_sampler,
                    output_dir=run.names.output_dir, output_name=run.names.output_name, step=self.global_step,
                    epoch=epoch, device=run.accelerator.device, dtype=run.weight_dtype, reporter=run.reporter,
                    default_seed=run.seed, clip_skip=sampling.clip_skip, max_token_length=sampling.max_token_length,
                    extra_modules=run.method.sampling_modules(),
                )
            except Exception as exc:  # a sample image that cannot be written never ends a run
                if not is_write_failure(exc):
                    raise
                logger.warning(msg("run.samples_not_written", "could not write the sample images of step {step} "
                                   "({reason}); training goes on", step=self.global_step, reason=failure_reason(exc)))
            finally:
                set_optimizer_train_mode(run.optimizer, True)
        run.accelerator.wait_for_everyone()

    # --- validation -----------------------------------------------------------------------------
    def maybe_validate(self, epoch: int, *, epoch_end: bool = False) -> None:
        run, validation = self.run, self.run.validation
        if validation is None or not validation.due(step=self.global_step, epoch=epoch, epoch_end=epoch_end):
            return
        self.reports.flush()  # the validation report carries the training loss's moving average
        run.accelerator.wait_for_everyone()
        if run.accelerator.is_main_process:  # one pass on one process: the loss does not depend on sharding
            validation.validate(
                run, batch_loss, step=self.global_step, epoch=epoch, epoch_end=epoch_end,
                train_loss=self.recorder.moving_average,
            )
        run.accelerator.wait_for_everyone()

    # --- the loop -------------------------------------------------------------------------------
    def optimizer_step(self, params: list[torch.nn.Parameter]) -> None:
        run = self.run
        if run.fused_backward is None:  # else every weight was stepped during the backward pass
            if not accelerator_backend(run.accelerator):  # DeepSpeed/FSDP reduce gradients themselves
                average_gradients(run, params)
            if run.step_config.max_grad_norm:
                run.accelerator.clip_grad_norm_(params, run.step_config.max_grad_norm)
            run.optimizer.step()
        run.lr_scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1

    def report_step(self, epoch: int, step_in_epoch: int, loss: torch.Tensor) -> None:
        """Record the step; its line is published now on the CPU, one step later on a GPU (step_reports.py)."""
        run = self.run
        reduced = run.accelerator.reduce(loss.detach(), "mean")  # all processes' batches; stays on the device
        lrs = [float(lr) for lr in run.lr_scheduler.get_last_lr()]
        extras = run.method.after_optimizer_step(run.accelerator.device)
        self.reports.add(StepRecord(self.global_step, epoch, step_in_epoch, reduced, lrs, extras))

    def _publish_step(self, record: StepRecord, loss_value: float) -> None:
        """Publish a step's line; a non-finite loss then stops the run (on a GPU this is one step late, but
        always before the next save, sample or validation: they flush the reports first)."""
        run = self.run
        self.recorder.add(epoch=record.epoch - 1, step=record.step_in_epoch, loss=loss_value)
        run.reporter.step(
            step=record.step, epoch=record.epoch, loss=loss_value, avr_loss=self.recorder.moving_average,
            lr=record.lrs, **record.extras,
        )
        if run.accelerator.trackers:
            logs = {"loss/current": loss_value, "loss/average": self.recorder.moving_average}
            logs.update({f"lr/{name}": lr for name, lr in zip(run.lr_descriptions, record.lrs, strict=False)})
            logs.update({f"max_norm/{key}": value for key, value in record.extras.items()})
            run.accelerator.log(logs, step=record.step)
        self._check_loss(record.step, loss_value)

    def train(self) -> Path:
        try:
            return self._train()
        except RunStopped:
            self.run.accelerator.end_training()  # the logs up to the stop are flushed
            self.finish_uploads()
            raise

    def _train(self) -> Path:
        run = self.run
        self.check_free_space()
        run.reporter.start(
            total_steps=run.total_steps, total_epochs=run.num_epochs, initial_step=self.global_step,
            seed=run.seed, num_batches_per_epoch=len(run.group), output=str(run.names.final_model()),
        )
        if self.global_step == 0:
            self.maybe_sample(epoch=None)
        params = run.method.trainable_parameters()
        loss_of = run.step_loss or functools.partial(batch_loss, run)
        accumulation = run.step_config.gradient_accumulation_steps
        epoch, batches_done, batches_in_epoch = self.start_epoch, self.skip_batches, 1
        for epoch in range(self.start_epoch, run.num_epochs + 1):
            if self.global_step >= run.total_steps:
                break
            sampler = run.loader.sampler
            sampler.skip = self.skip_batches if epoch == self.start_epoch else 0
            run.group.set_epoch(epoch)
            run.method.on_epoch_start()
            batches_in_epoch = sampler.batches_in_epoch()
            batches_done = sampler.skip
            pending = 0
            for batch in run.loader:  # this process's share of each global batch
                seed_step_random(run, epoch, batches_done)
                run.method.on_step_start(self.global_step)
                loss = loss_of(batch, sample_generators(run, epoch, batch["sample_indices"]))
                run.accelerator.backward(loss / accumulation)
                batches_done += 1
                pending += 1
                if pending < accumulation and batches_done < batches_in_epoch:
                    continue
                pending = 0
                self.optimizer_step(params)
                self.report_step(epoch, (batches_done - 1) // accumulation, loss)
                self.after_step_saves(epoch, batches_done)
                self.maybe_sample(epoch=None)
                self.maybe_validate(epoch)
                if self.global_step >= run.total_steps:
                    break
            if batches_done >= batches_in_epoch:
                self.after_epoch_saves(epoch)
                self.maybe_sample(epoch=epoch)
                self.maybe_validate(epoch, epoch_end=True)

        final = self.save_model(run.names.final_model(), epoch=epoch, final=True)
        if run.saving.save_state_on_train_end:
            epoch_done = batches_done >= batches_in_epoch
            self.save_training_state(
                run.names.final_state(),
                epoch=epoch + 1 if epoch_done else epoch,
                batches_done=0 if epoch_done else batches_done,
            )
        self.reports.flush()
        rescued = self.saves.finished_error(final, self.global_step)
        if rescued is not None:
            raise rescued
        self.finish_uploads()
        run.accelerator.end_training()
        run.reporter.end(reason="completed", output=str(final), step=self.global_step)
        return final
