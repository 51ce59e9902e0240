"""The training loop: exact accumulation, mixed precision, deterministic data order, exact resume."""
from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import torch
from tqdm import tqdm

from segbench.data.loader import data_loader
from segbench.data.transformed import epoch_permutation
from segbench.deep_supervision import supervised_loss
from segbench.engine.checkpoint import (capture_rng_state, load_checkpoint, load_weights, restore_rng_state,
                                       save_checkpoint)
from segbench.engine.distributed import DistEnv, any_rank, barrier, max_over_ranks
from segbench.engine.evaluate import EvaluationStopped, evaluate_confusion
from segbench.engine.rundir import RunDir
from segbench.engine.runtime import Runtime
from segbench.engine.state_contract import check_checkpointable
from segbench.engine.step_contract import blamed_on, check_learning_rates, check_loss_value, check_training_logits
from segbench.engine.loggers import RunLoggers, RunStart, flatten
from segbench.errors import CheckpointError, DataError, TrainingDivergedError
from segbench.functional.metrics import iou_per_class, mean_iou
from segbench.records import SelectionRecord, TrainStepRecord
from segbench.stderr import STDERR

if TYPE_CHECKING:
    from segbench.engine.build import RunComponents

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: last.pt is written, run the same command again to resume
INTERRUPTED_EXIT_CODE = 130  # what a shell reports for Ctrl-C (SIGINT)


class Preempted(Exception):
    """SIGTERM, SIGUSR1 or a Ctrl-C arrived; ``last.pt`` was written."""


@attrs.define
class TrainState:
    epoch: int = 0  # completed epochs
    iteration: int = 0  # optimizer steps done
    window_in_epoch: int = 0  # accumulation windows done in the current epoch
    best_metric: float = -math.inf
    best_epoch: int = -1
    elapsed: float = 0.0
    # The selection evaluation after epoch ``epoch`` is still to do (a signal stopped it): resume redoes it.
    pending_selection: bool = False
    # A signal inside a log_every window: the loss summed so far in it, and its steps, so the resumed run
    # logs the same value as an uninterrupted one.
    window_loss_sum: float = 0.0
    window_logged_steps: int = 0


def epoch_batches(num_items: int, *, batch_size: int, seed: int, epoch: int, env: DistEnv) -> list[list[int]]:
    """This rank's batches for ``epoch``: a seeded permutation, sharded, last incomplete batch dropped.

    Dropping it matters: batch-norm in ASPP's pooling branch fails on a batch of one.
    """
    order = epoch_permutation(num_items, seed=seed, epoch=epoch)
    per_rank = num_items // env.world_size
    mine = order[env.rank::env.world_size][:per_rank]
    return [mine[i:i + batch_size] for i in range(0, per_rank - batch_size + 1, batch_size)]


@attrs.frozen
class ScheduleLength:
    iterations_per_epoch: int
    epochs: int
    total_iterations: int


def schedule_length(num_items: int, trainer, env: DistEnv) -> ScheduleLength:
    """Optimizer steps per epoch, epochs and total steps for ``num_items`` training images.

    Matches :func:`epoch_batches`: each rank gets ``num_items // world_size`` images in full batches.
    """
    batches = (num_items // env.world_size) // trainer.batch_size
    if batches == 0:
        raise DataError(f"the training split has {num_items} images, fewer than one batch of"
                        f" {trainer.batch_size} per process; lower trainer.batch_size or use more data")
    per_epoch = math.ceil(batches / trainer.accumulate)
    if trainer.max_iterations is not None:
        return ScheduleLength(per_epoch, math.ceil(trainer.max_iterations / per_epoch), trainer.max_iterations)
    return ScheduleLength(per_epoch, trainer.epochs, trainer.epochs * per_epoch)


def _stop_now(signum: int, before_exit=None) -> None:
    """Leave at once, as after a SIGKILL, which every step before the training loop survives (a data tree is
    generated into a ``.partial`` folder, files are written atomically, a ``--restart``'s set-aside run is settled
    by the next command) but with the exit status that asks Slurm to requeue, and with the run lock released
    (``before_exit``: a requeued job may start on another host, which could not take a lock held here over).
    An exception raised from the handler could interrupt a worker pool inside its own locks and hang it."""
    import multiprocessing

    os.write(2, f"\nsegbench: received signal {signum} before training started (nothing new to save). Run the"
                " same command to go on.\n".encode())  # not sys.stderr: the signal may have interrupted a write
    for child in multiprocessing.active_children():  # data generation or DataLoader workers
        child.kill()  # not SIGTERM: forked from here, they carry this handler, which leaves it to their parent
    if before_exit is not None:
        try:
            before_exit()
        except Exception:  # leaving matters more: a stale lock is still taken over on this host
            pass
    os._exit(PREEMPTED_EXIT_CODE)


class SignalFlag:
    """Records SIGTERM/SIGUSR1 so the loop can checkpoint at the next step boundary. Before the loop starts
    (``immediate``: reading data, counting class pixels, building the model) there is nothing to save, and
    waiting for the first step could outlast a scheduler's grace period: the signal stops the run at once.

    From the loop on (``answer_at_step_boundaries``) a first Ctrl-C (SIGINT) is answered like SIGTERM, so an
    interrupted run keeps the steps since its last checkpoint; a second one stops at once."""

    def __init__(self, *, before_exit=None):
        self.received: int | None = None
        self.interrupts = 0  # Ctrl-C presses: a first one after a SIGTERM is still a first one
        self.immediate = True
        self._before_exit = before_exit
        self._previous = {}

    def __enter__(self):
        self._pid = os.getpid()
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._install(sig, self._handle)
        return self

    def _install(self, sig, handler) -> None:
        try:
            previous = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            return
        self._previous.setdefault(sig, previous)

    def answer_at_step_boundaries(self) -> None:
        """From here on a signal is answered with a checkpoint at a step boundary (Ctrl-C included)."""
        self.immediate = False
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not a caller's own handler
            self._install(signal.SIGINT, self._interrupt)

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:  # a forked DataLoader worker: its parent answers the signal
            return
        self.received = signum
        if self.immediate:
            _stop_now(signum, self._before_exit)

    def _interrupt(self, signum, frame):
        if os.getpid() != self._pid:  # a worker gets the terminal's Ctrl-C too: its parent stops the run
            return
        self.interrupts += 1
        if self.interrupts > 1:  # asked twice: stop now
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signum
        try:  # not sys.stderr: the signal may have interrupted a write to it
            os.write(2, b"\nsegbench: interrupted; stopping after this step to write a checkpoint (Ctrl-C again to"
                        b" stop at once)\n")
        except OSError:  # the reader of a pipe got the Ctrl-C too
            pass

    def stopped(self, env: DistEnv, device) -> Preempted:
        """What ends the run once the ranks agreed to stop (a collective, so every rank calls it there): the highest
        signal number any rank received, so that every rank ends with the same status (Ctrl-C on one rank alone
        ends them all as interrupted)."""
        return Preempted(max_over_ranks(self.received or 0, env, device))

    def stop_if_any_rank_received(self, env: DistEnv, device) -> None:
        """At a point where ``last.pt`` is up to date: end the run for a signal that any rank received (ranks vote,
        as one that stopped alone would leave the others in a collective)."""
        if any_rank(self.received is not None, env, device):
            raise self.stopped(env, device)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _launch_hint(world_size: int) -> str:
    if world_size == 1:
        return "plain `segbench run`, or a Slurm job with one task"
    return f"`torchrun --nproc_per_node {world_size} -m segbench run ...`, or a Slurm job with {world_size} tasks"


class Trainer:
    """Trains ``parts`` (the objects :func:`segbench.engine.build.build_components` made) under ``runtime``."""

    def __init__(self, plan, run: RunDir, parts: "RunComponents", runtime: Runtime, *, progress=True, log=print,
                 after_first_checkpoint=None, loggers: RunLoggers | None = None):
        self.plan, self.run, self.parts, self.runtime = plan, run, parts, runtime
        self.cfg = plan.trainer
        self.model, self.train_data, self.select_data = parts.model, parts.train_data, parts.select_data
        self.criterion, self.optimizer, self.scheduler = parts.criterion, parts.optimizer, parts.scheduler
        self.device, self.env = runtime.device, runtime.dist
        self.progress, self.log = progress, log
        self.loggers = loggers if loggers is not None else RunLoggers()  # the main process's; none elsewhere
        self.after_first_checkpoint = after_first_checkpoint  # called once, after the first checkpoint is written
        self.scaler = torch.amp.GradScaler("cuda", enabled=runtime.precision == "fp16")
        self.state = TrainState()
        length = schedule_length(len(self.train_data), self.cfg, self.env)
        self.iterations_per_epoch = length.iterations_per_epoch
        self.epochs, self.total_iterations = length.epochs, length.total_iterations

    # -- checkpoints -------------------------------------------------------------------------------
    def _raw_model(self):
        return getattr(self.model, "module", self.model)

    def _component_state(self, built, component) -> dict:
        with blamed_on(component, "in state_dict()"):
            state = built.state_dict()
        check_checkpointable(state, component)
        return state

    def _checkpoint_state(self) -> dict:
        return {
            "model": self._raw_model().state_dict(),
            "model_name": self.plan.model.name,
            "optimizer": self._component_state(self.optimizer, self.plan.optimizer),
            "scheduler": self._component_state(self.scheduler, self.plan.scheduler),
            "scaler": self.scaler.state_dict(),
            "train_state": attrs.asdict(self.state),
            "rng": capture_rng_state(),
            "recipe_hash": self.plan.hash,
            "world_size": self.env.world_size,
        }

    def save(self, path: Path) -> None:
        if self.env.is_main:
            self.loggers.flush()  # everything logged up to this step is kept when a resume starts here
            save_checkpoint(path, self._checkpoint_state())
            callback, self.after_first_checkpoint = self.after_first_checkpoint, None
            if callback is not None:
                callback()

    def resume(self) -> bool:
        """Continue from ``last.pt`` when present; a corrupt file is an error, never a silent restart."""
        if self.env.is_main and self.run.checkpoints.is_dir():
            for partial in self.run.checkpoints.glob(".*.pt.*.tmp"):
                partial.unlink(missing_ok=True)  # a checkpoint write cut short by a crash (we hold the run lock)
        if not self.run.last.exists():
            self._start_loggers(resumed=False)  # records of an attempt that died before its first checkpoint go
            return False
        state = load_checkpoint(self.run.last)
        if state.get("recipe_hash") != self.plan.hash:
            raise CheckpointError(f"{self.run.last} belongs to another recipe (hash {state.get('recipe_hash')});"
                                  " use --restart to start this run over.")
        written_by = state.get("world_size", self.env.world_size)  # older checkpoints do not say
        trained = state.get("train_state") or {}
        training_left = trained.get("iteration", 0) < self.total_iterations or trained.get("pending_selection")
        if written_by != self.env.world_size and training_left:
            # the batch is per process: another count changes the steps per epoch and the schedule midway
            raise CheckpointError(
                f"{self.run.last} was written by this run with {written_by} process(es), and this command starts"
                f" {self.env.world_size}: resumed so, its learning-rate schedule and epochs would change midway."
                f" Resume it with {written_by} process(es) ({_launch_hint(written_by)}), or start it over with"
                " `segbench run --restart`.")
        load_weights(self._raw_model(), state["model"], self.run.last)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            known = {field.name for field in attrs.fields(TrainState)}  # metrics_offset of older checkpoints
            self.state = TrainState(**{k: v for k, v in state["train_state"].items() if k in known})
            restore_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{self.run.last} holds a training state this run cannot continue from ({type(exc).__name__}:"
                f" {str(exc).splitlines()[0][:200] if str(exc) else exc!r}). Restore it from a copy, or start the"
                " run over with `segbench run --restart`.") from None
        self._start_loggers(resumed=True)
        self.log(f"resuming from {self.run.last}: epoch {self.state.epoch}, iteration {self.state.iteration}")
        return True

    # -- logging -----------------------------------------------------------------------------------
    def _start_loggers(self, *, resumed: bool) -> None:
        from segbench.recipe.load import dump_yaml

        recipe = self.plan.recipe
        self.loggers.start(RunStart(self.run.path, recipe.name, dump_yaml(recipe.data), flatten(recipe.data),
                                    tuple(self.parts.class_names), self.state.iteration if resumed else 0, resumed))

    def _panels(self, count: int):
        from segbench.engine.panels import prediction_panels

        return prediction_panels(self._raw_model(), self.select_data, self.plan.eval_transforms, count=count,
                                 config=self.plan.evaluation, runtime=self.runtime)

    def _lr(self) -> float:
        return self.optimizer.param_groups[-1]["lr"]

    # -- the loop ----------------------------------------------------------------------------------
    def _micro_step(self, images, masks, scale):
        images = self.runtime.images(images)
        masks = masks.to(self.device, non_blocking=True)
        with self.runtime.autocast(), blamed_on(self.plan.model, "in its training forward pass"):
            output = self.model(images)
        supervised = check_training_logits(output, masks, self.plan.model, num_classes=self.parts.num_classes)
        with blamed_on(self.plan.loss, "computing the loss"):
            loss = supervised_loss(self.criterion, supervised, masks)
        check_loss_value(loss, self.plan.loss)
        self.scaler.scale(loss * scale).backward()
        return loss.detach()

    def _optimizer_step(self):
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        with blamed_on(self.plan.scheduler, "in step_iteration()"):
            self.scheduler.step_iteration()
        check_learning_rates(self.optimizer, self.plan.scheduler, "step_iteration()")

    def _check_finite(self, loss_sum: torch.Tensor, steps: int) -> float:
        """``loss_sum`` over the last ``steps`` iterations, checked once per logged window (reading it waits for
        the device), so the window is what the error can name."""
        value = float(loss_sum)
        if not math.isfinite(value):
            last = self.state.iteration
            window = f"iteration {last}" if steps <= 1 else f"iterations {last - steps + 1}-{last}"
            first = last - steps < 1  # within the first logged window
            causes = [  # most likely first: a loss that is NaN before any update comes from the inputs
                "the data: a dataset yielding NaN or infinite values, or the normalisation (data.*_transforms"
                " normalize mean/std) of a custom transform or dataset",
                "the learning rate: lower optimizer.lr (or lengthen the scheduler's warm-up) and enable"
                " trainer.grad_clip",
                "reduced precision overflowing: use trainer.precision=fp32 (or bf16 instead of fp16)",
                f"the loss {self.plan.loss.name!r} ({self.plan.loss.entry.origin}) itself: a division by a count"
                " that can be zero (a batch whose pixels are all ignored) or a log of zero",
                f"the model {self.plan.model.name!r} ({self.plan.model.entry.origin}) itself: NaN or infinite"
                " logits in training mode (its eval-mode output was checked before training)",
            ]
            if not first:
                causes[0], causes[1] = causes[1], causes[0]
            listed = "; ".join(f"({n}) {cause}" for n, cause in enumerate(causes, 1))
            raise TrainingDivergedError(
                f"the training loss was not a finite number ({value}) in {window}, checked every"
                f" trainer.log_every = {self.cfg.log_every} iteration(s). Stopped without saving; the last good"
                f" checkpoint is {self.run.last if self.run.last.exists() else '(none yet)'}. Likely causes, most"
                f" likely first: {listed}."
            )
        return value

    def fit(self, signals: SignalFlag) -> TrainState:
        cfg = self.cfg
        check_learning_rates(self.optimizer, self.plan.scheduler, "its factory")
        signals.answer_at_step_boundaries()
        self.model.train()
        if self.state.pending_selection:
            self._select_and_checkpoint(signals)
        while self.state.epoch < self.epochs and self.state.iteration < self.total_iterations:
            self._train_epoch(signals)
            if self.state.iteration >= self.total_iterations or self.state.window_in_epoch == 0:
                epoch_done = self.state.epoch  # already advanced by _train_epoch
                if epoch_done % cfg.eval_every == 0 or epoch_done >= self.epochs or \
                        self.state.iteration >= self.total_iterations:
                    self.state.pending_selection = True
                    self._select_and_checkpoint(signals)
                else:
                    self.save(self.run.last)
                    barrier(self.env)
                    signals.stop_if_any_rank_received(self.env, self.device)
        return self.state

    def _train_epoch(self, signals: SignalFlag):
        cfg, state = self.cfg, self.state
        started = time.perf_counter()
        batches = epoch_batches(len(self.train_data), batch_size=cfg.batch_size, seed=self.plan.seed,
                                epoch=state.epoch, env=self.env)
        windows = [batches[i:i + cfg.accumulate] for i in range(0, len(batches), cfg.accumulate)]
        remaining = [b for w in windows[state.window_in_epoch:] for b in w]
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(state.epoch)
        loader = data_loader(self.train_data, batch_sampler=remaining, num_workers=cfg.num_workers,
                            pin_memory=self.device.type == "cuda")
        # trainer.max_iterations may end the run inside this epoch: the bar ends where training does.
        steps_here = min(len(windows), state.window_in_epoch + self.total_iterations - state.iteration)
        bar = tqdm(total=steps_here, initial=state.window_in_epoch, disable=not (self.progress and self.env.is_main),
                   desc=f"epoch {state.epoch + 1}/{self.epochs}", unit="it", leave=False, file=STDERR)
        loss_sum = torch.tensor(state.window_loss_sum, dtype=torch.float32, device=self.device)
        logged_steps, images_seen, log_started = state.window_logged_steps, 0, time.perf_counter()
        state.window_loss_sum, state.window_logged_steps = 0.0, 0
        iterator = iter(loader)
        stop = False
        for window in windows[state.window_in_epoch:]:
            window_images = sum(len(b) for b in window)
            for position, batch in enumerate(window):
                images, masks = next(iterator)
                sync = position == len(window) - 1 or not hasattr(self.model, "no_sync")
                context = self.model.no_sync() if not sync else contextlib.nullcontext()
                with context:
                    # Each micro-batch counts by its share of the window's images, so a final partial
                    # window is averaged over its true size.
                    loss_sum += self._micro_step(images, masks, len(batch) / window_images) * len(batch) / window_images
            self._optimizer_step()
            state.iteration += 1
            state.window_in_epoch += 1
            logged_steps += 1
            images_seen += window_images * self.env.world_size
            bar.update(1)
            if state.iteration % cfg.log_every == 0 or state.window_in_epoch == len(windows):
                loss = self._check_finite(loss_sum, logged_steps) / logged_steps
                rate = images_seen / max(time.perf_counter() - log_started, 1e-9)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self._lr():.2e}", img_s=f"{rate:.1f}")
                self.loggers.train(TrainStepRecord(epoch=state.epoch, iteration=state.iteration, loss=loss,
                                                   lr=self._lr(), images_per_s=rate))
                loss_sum.zero_()
                logged_steps, images_seen, log_started = 0, 0, time.perf_counter()
            # Ranks agree on stopping: one that stopped alone would leave the others in a collective.
            stop = any_rank(signals.received is not None, self.env, self.device)
            if stop or state.iteration >= self.total_iterations:
                break
        bar.close()
        del iterator, loader
        state.elapsed += time.perf_counter() - started
        if state.window_in_epoch >= len(windows) or state.iteration >= self.total_iterations:
            state.epoch += 1
            state.window_in_epoch = 0
        if stop and state.iteration < self.total_iterations and state.window_in_epoch != 0:
            if logged_steps:
                self._check_finite(loss_sum, logged_steps)
                state.window_loss_sum, state.window_logged_steps = float(loss_sum), logged_steps
            self.save(self.run.last)
            barrier(self.env)  # no rank exits before rank 0's last.pt is written
            raise signals.stopped(self.env, self.device)

    def _select_and_checkpoint(self, signals: SignalFlag):
        state = self.state
        try:
            matrix = evaluate_confusion(self.model, self.select_data, self.plan.eval_transforms,
                                        config=self.plan.evaluation, num_classes=self.parts.num_classes,
                                        ignore_index=self.parts.ignore_index, runtime=self.runtime,
                                        num_workers=self.cfg.num_workers, progress=self.progress, desc="select",
                                        stop=lambda: signals.received is not None)
        except EvaluationStopped:
            self.save(self.run.last)  # with pending_selection: the resumed run starts with this evaluation
            barrier(self.env)
            raise signals.stopped(self.env, self.device) from None
        miou = float(mean_iou(matrix))
        with blamed_on(self.plan.scheduler, "in step_epoch()"):
            self.scheduler.step_epoch(miou)
        check_learning_rates(self.optimizer, self.plan.scheduler, "step_epoch()")
        improved = miou > state.best_metric or state.best_epoch < 0
        if improved:
            state.best_metric, state.best_epoch = miou, state.epoch
        state.pending_selection = False
        ious = [None if math.isnan(v) else v for v in iou_per_class(matrix).tolist()]
        self.loggers.evaluate(SelectionRecord(split="select", epoch=state.epoch, iteration=state.iteration, mIoU=miou,
                                              best_mIoU=state.best_metric, lr=self._lr(),
                                              per_class_iou=dict(zip(self.parts.class_names, ious))), self._panels)
        self.log(f"epoch {state.epoch}/{self.epochs}  iteration {state.iteration}  selection mIoU {miou:.4f}"
                 f"  best {state.best_metric:.4f} (epoch {state.best_epoch})  lr {self._lr():.2e}")
        if improved:
            self.save(self.run.best)
        self.save(self.run.last)
        barrier(self.env)
        signals.stop_if_any_rank_received(self.env, self.device)

