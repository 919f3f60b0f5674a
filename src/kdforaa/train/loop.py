"""The training engine: one loop for plain cross-entropy training and for distillation.

Per step: uint8 batch -> per-sample keys -> augmentation on the device -> normalise (the views of
:mod:`kdforaa.distill.views`) -> teacher logits (live, or looked up in a cache: the same call) ->
student -> criterion (all of it one call of the run's :class:`~kdforaa.distill.distiller.Distiller`)
-> SGD step. The run's parts come from :func:`~kdforaa.train.parts.build_parts`;
the :class:`Trainer` holds only the loop's state (epoch, step, statistics, checkpoints). All randomness
of the data path comes from counter-based keys, and the model's own randomness (dropout) from the torch
RNG saved in every checkpoint, so a resumed run ends with bit-identical weights on the CPU.

A step never waits for the device: its statistics (loss terms, correct answers) are summed in float64
on the device and read once per checkpoint or epoch (:meth:`Trainer.read_statistics`), in the same order
of additions as Python floats would give. On CUDA the non-finite-loss check of ``train.on_nan=stop`` is
deferred the same way (``Trainer.deferred_checks``): the run stops at the next read, naming the first
bad step, before any checkpoint is written; ``train.on_nan=skip`` must decide before each update, so it
still reads the loss every step.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from kdforaa import __version__, progress
from kdforaa.augment.apply import describe_backend
from kdforaa.augment.random import permutation
from kdforaa.checkpoint import load_checkpoint, save_checkpoint
from kdforaa.config import RunConfig, build_config, config_to_dict
from kdforaa.data.datasets import Dataset
from kdforaa.data.loader import batches
from kdforaa.errors import BadInput, Stopped, TrainingError
from kdforaa.train import distributed as dist
from kdforaa.train.device import resolve_device
from kdforaa.train.evaluate import evaluate, inference_speed
from kdforaa.train.parts import build_parts
from kdforaa.train.run_folder import RunFolder
from kdforaa.train.schedule import lr_factor
from kdforaa.train.threads import set_threads

if TYPE_CHECKING:  # tensorboard is an extra: imported when train.tensorboard asks for it
    from torch.utils.tensorboard import SummaryWriter


@dataclass
class RunTimes:
    """Wall-clock seconds of a run that a checkpoint carries over to its resumed sessions.

    ``before``: the whole time of earlier sessions; ``eval`` and ``setup``: the test evaluations and
    the set-ups (data, models, teacher) of all sessions so far. The training steps' seconds are the
    Trainer's ``elapsed``.
    """

    before: float = 0.0
    eval: float = 0.0
    setup: float = 0.0

    def total_at(self, started: float) -> dict[str, float]:
        """What a checkpoint records: the run's whole time so far (this session began at ``started``)."""
        return {"total": self.before + time.perf_counter() - started, "eval": self.eval, "setup": self.setup}

    @classmethod
    def restored(cls, saved: dict[str, float] | None, elapsed: float) -> RunTimes:
        """From a checkpoint's ``times`` (a checkpoint written before they were recorded: its training
        seconds stand for the whole)."""
        if not saved:
            return cls(before=elapsed)
        return cls(before=saved["total"], eval=saved["eval"], setup=saved["setup"])


class Trainer:
    """Trains ``cfg.model`` on ``cfg.data`` into the run folder ``out``; ``resume`` continues its last.pt."""

    def __init__(
        self,
        cfg: RunConfig,
        out: str | Path,
        resume: bool = False,
        progress: bool = True,
        world: dist.World | None = None,
    ):
        self.started = time.perf_counter()  # this session's set-up starts: data, models, teacher
        self.cfg, self.folder = cfg, RunFolder(out)
        self.world = world or dist.World()
        self.progress = progress and self.world.is_main
        self.device = resolve_device(cfg.train.device, self.world.local_rank)
        self.threads = set_threads(cfg.train.threads)  # fixed before any computation: the bits depend on it
        self.local_batch = dist.local_batch_size(cfg.train.batch_size, self.world)
        if self.world.is_main:
            self._check_folder(resume)
        self.parts = build_parts(cfg, self.device, self.world)
        n, batch = len(self.parts.train_set), cfg.train.batch_size
        if self.world.distributed and n < batch:
            raise BadInput(f"the training set has {n} samples, fewer than train.batch_size={batch}")
        self.steps_per_epoch = max(1, n // batch)
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_acc, self.elapsed, self.skipped = -1.0, 0.0, 0
        # seconds of earlier sessions (a resumed run's): everything, evaluations, set-ups
        self.times = RunTimes()
        self.stats: dict[str, float] = {}
        self.sums: dict[str, torch.Tensor] = {}  # this interval's statistics, on the device
        self.nonfinite: torch.Tensor | None = None  # first global step (1-based) with a non-finite loss
        # On CUDA a step reads nothing back (a read waits for the device); on the CPU a read is free.
        self.deferred_checks = self.device.type == "cuda" and cfg.train.on_nan == "stop"
        self._stop_signal: int | None = None
        if resume:
            self._restore(self._resume_state())
        # one writer, on rank 0: other ranks' events would interleave in the same folder
        self.writer = self._tensorboard() if cfg.train.tensorboard and self.world.is_main else None
        if self.world.is_main:  # only now that every input was accepted does the folder change
            self.folder.lock()
            if not resume:
                self.folder.write_config(config_to_dict(cfg))
        self.times.setup += time.perf_counter() - self.started

    # ----------------------------------------------------------------- set-up
    def _check_folder(self, resume: bool) -> None:
        folder = self.folder
        if resume:
            if not folder.can_resume():
                raise BadInput(f"nothing to resume in {folder.path}: it has no {folder.last.name}")
        elif folder.has_run() and folder.can_resume():
            raise BadInput(
                f"{folder.path} already holds a run: continue it with 'kdforaa train --resume {folder.path}' "
                "or choose another run folder"
            )
        elif folder.has_run():
            raise BadInput(
                f"{folder.path} holds a run that never reached its first checkpoint: delete the folder "
                "or choose another run folder"
            )

    def _tensorboard(self) -> SummaryWriter:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise BadInput(
                "train.tensorboard needs tensorboard: pip install 'kdforaa[tensorboard]'"
            ) from None
        return SummaryWriter(str(self.folder.file("tensorboard")))

    # ------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        ds = self.parts.train_set
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.parts.model.state_dict(),
            "optimizer": self.parts.optimizer.state_dict(),
            "criterion": self.parts.criterion.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_acc": self.best_acc,
            "elapsed": self.elapsed,
            "times": self.times.total_at(self.started),
            "skipped_steps": self.skipped,
            "stats": dict(self.stats),
            "rng": rng,
            "config": config_to_dict(self.cfg),
            "model_name": self.cfg.model.name,
            "num_classes": ds.num_classes,
            "in_channels": ds.in_channels,
            "image_size": list(ds.image_size),
            "mean": list(ds.mean),
            "std": list(ds.std),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.parts.model.load_state_dict(state["model"])
        self.parts.optimizer.load_state_dict(state["optimizer"])
        self.parts.criterion.load_state_dict(state["criterion"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.best_acc = state["global_step"], state["best_acc"]
        self.elapsed, self.skipped = state["elapsed"], state["skipped_steps"]
        self.times = RunTimes.restored(state.get("times"), self.elapsed)
        self.stats = dict(state["stats"]) if self.world.is_main else {}  # rank 0 saved the sum of all ranks
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        if self.world.is_main:
            self.folder.keep_metrics_before(self.epoch)

    def _resume_state(self) -> dict[str, Any]:
        """last.pt, or previous.pt with a warning when last.pt is missing or damaged."""
        folder = self.folder
        try:
            return load_checkpoint(folder.last, map_location="cpu")
        except BadInput as err:
            if not folder.previous.exists():
                raise
            warnings.warn(f"{err}; resuming from {folder.previous.name} instead", stacklevel=2)
            return load_checkpoint(folder.previous, map_location="cpu")

    def _write(self, path: Path, keep_previous: Path | None = None) -> None:
        try:
            save_checkpoint(self._state(), path, keep_previous=keep_previous)
        except OSError as err:
            raise TrainingError(
                f"could not write checkpoint {path}: {err.strerror or err}; the previous checkpoint is "
                f"intact: free space and continue with 'kdforaa train --resume {self.folder.path}'"
            ) from None

    def save(self) -> None:
        """Write last.pt (rank 0), keeping the one it replaces as previous.pt. Every rank must call it."""
        self.read_statistics()
        local = self.stats
        self.stats = dist.all_reduce_sum(local, self.world)
        if self.world.is_main:
            self._write(self.folder.last, keep_previous=self.folder.previous)
        self.stats = local

    # ------------------------------------------------------------------ steps
    def _accumulate(
        self,
        terms: dict[str, torch.Tensor],
        logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        n: int,
    ) -> None:
        """Add the step's sums to :attr:`sums` on the device (nothing is read back; ``n`` is the host's)."""
        step = {name: value.detach().double() * n for name, value in terms.items()}
        step["correct"] = (logits.argmax(1) == labels).sum().double()
        if teacher_logits is not None:
            step["teacher_wrong"] = (teacher_logits.argmax(1) != labels).sum().double()
        for name, value in step.items():
            if name not in self.sums:  # continues the host's sum: the additions happen in the same order
                self.sums[name] = torch.tensor(
                    self.stats.get(name, 0.0), dtype=torch.float64, device=value.device
                )
            self.sums[name] += value
        self.stats["n"] = self.stats.get("n", 0.0) + n

    def read_statistics(self) -> None:
        """Bring :attr:`sums` into :attr:`stats` (one wait for the device), and stop the run when a
        deferred check found a non-finite loss (before anything is written)."""
        names = list(self.sums)
        read = torch.stack([self.sums[name] for name in names]).tolist() if names else []
        self.stats.update(zip(names, read, strict=True))
        self.sums = {}
        if self.nonfinite is not None:
            first, self.nonfinite = int(self.nonfinite), None
            if first > 0:
                raise TrainingError(
                    f"non-finite loss at global step {first} (found at step {self.global_step}; checked "
                    "once per checkpoint on CUDA); lower train.lr or set train.on_nan=skip"
                )

    def _defer_finite_check(self, loss: torch.Tensor) -> None:
        """Remember (on the device) the first global step whose loss is not finite."""
        if self.nonfinite is None:
            self.nonfinite = torch.zeros((), dtype=torch.int64, device=loss.device)
        bad = ~torch.isfinite(loss.detach()) & (self.nonfinite == 0)
        self.nonfinite = torch.where(bad, self.global_step + 1, self.nonfinite)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        cfg, parts = self.cfg, self.parts
        labels = labels.to(self.device, non_blocking=True)
        for group in parts.optimizer.param_groups:
            group["lr"] = cfg.train.lr * lr_factor(
                cfg.train, self.global_step, self.total_steps, self.steps_per_epoch
            )
        step = parts.distiller(
            images.to(self.device, non_blocking=True), labels, indices=indices, epoch=self.epoch
        )
        loss, terms = step.loss, step.terms
        parts.optimizer.zero_grad(set_to_none=True)
        if self.deferred_checks:
            self._defer_finite_check(loss)
            loss.backward()
            parts.optimizer.step()
        elif not torch.isfinite(loss):
            detail = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            if cfg.train.on_nan == "stop":
                raise TrainingError(
                    f"non-finite loss at epoch {self.epoch + 1} step {self.step_in_epoch + 1} "
                    f"(global step {self.global_step + 1}): {detail}; lower train.lr or set train.on_nan=skip"
                )
            self.skipped += 1
        else:
            loss.backward()
            parts.optimizer.step()
        self._accumulate(
            {"loss": loss.detach(), **terms},
            step.logits.detach(),
            labels,
            step.teacher_logits,
            labels.numel(),
        )
        self.step_in_epoch += 1
        self.global_step += 1
        if self.writer is not None:
            self._log_step(self.writer, {"loss": loss.detach(), **terms})

    # ------------------------------------------------------------------ epochs
    def _epoch_record(self, seconds: float, images_seen: int) -> dict[str, Any]:
        s, n = self.stats, max(1.0, self.stats.get("n", 0.0))
        # the epoch just completed, counted from 1 as on the console
        record: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step}
        record["lr"] = self.parts.optimizer.param_groups[0]["lr"]
        for name, value in s.items():
            if name not in ("n", "correct", "teacher_wrong"):
                record[f"train_{name}"] = value / n
        record["train_acc"] = 100.0 * s.get("correct", 0.0) / n
        if "teacher_wrong" in s:
            record["teacher_outlier_rate"] = s["teacher_wrong"] / n
        if self._evaluates_now():
            t0 = time.perf_counter()
            test_set = self._test_set_now()
            test = evaluate(self.parts.model, test_set, self.device, self.cfg.train.eval_batch_size)
            record.update(test_acc=test["acc"], test_loss=test["loss"], test_images=len(test_set))
            record["eval_seconds"] = time.perf_counter() - t0
            self.times.eval += record["eval_seconds"]
        record["skipped_steps"] = self.skipped
        record["epoch_seconds"] = seconds
        record["img_per_s"] = images_seen / seconds if seconds > 0 else math.nan
        record["threads"] = self.threads  # torch CPU threads: the bits depend on it
        return record

    def _test_set_now(self) -> Dataset:
        """The whole test set at the last epoch; before it, its first ``train.eval_limit`` images."""
        test_set, limit = self.parts.test_set, self.cfg.train.eval_limit
        if limit is None or self.epoch + 1 == self.cfg.train.epochs or limit >= len(test_set):
            return test_set
        return test_set.first(limit)

    def _evaluates_now(self) -> bool:
        """Test evaluation costs a third of a small model's epoch: ``train.eval_every`` thins it out."""
        done, every = self.epoch + 1, self.cfg.train.eval_every
        return done == self.cfg.train.epochs or (every > 0 and done % every == 0)

    def run(self) -> dict[str, Any]:
        """Train to the configured number of epochs; returns the summary (also written to summary.json)."""
        cfg = self.cfg
        previous = self._catch_signals()
        try:
            while self.epoch < cfg.train.epochs:
                self._run_epoch()
            # Every rank finishes training before any tears the group down: a gloo rank whose peer has
            # already closed its connections can abort ("terminate called without an active exception").
            dist.barrier(self.world)
            if not self.world.is_main:
                return {}
            summary = self._summary()
            self.folder.write_summary(summary)
            return summary
        except BaseException:
            if self.world.is_main:  # a run that failed before its first checkpoint must not block --out
                self.folder.forget_unstarted_run()
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.writer is not None:
                self.writer.close()
            self.folder.unlock()
            dist.destroy(self.world)

    def _catch_signals(self) -> dict[int, Any]:
        """SIGTERM / Ctrl-C: finish the step, checkpoint, stop. A second Ctrl-C aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stop_signal = signum
            signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def _stop_if_asked(self) -> None:
        if not dist.any_rank(self._stop_signal is not None, self.world):
            return
        self.save()
        signum = self._stop_signal or signal.SIGTERM
        name = signal.Signals(signum).name
        raise Stopped(
            signum,
            f"stopped by {name} at epoch {self.epoch + 1} step {self.step_in_epoch}; checkpoint written: "
            f"continue with 'kdforaa train --resume {self.folder.path}'",
        )

    def _run_epoch(self) -> None:
        cfg, bs = self.cfg, self.cfg.train.batch_size
        self.parts.model.train()
        order = permutation(cfg.seed, self.epoch, len(self.parts.train_set))[: self.steps_per_epoch * bs]
        order = dist.shard(order, bs, self.world)
        start, local = self.step_in_epoch, self.local_batch
        # a bar on a terminal; elsewhere only the epoch's line (_log)
        bar = progress.bar(
            self.steps_per_epoch,
            f"epoch {self.epoch + 1}/{cfg.train.epochs}",
            enabled=self.progress,
            initial=start,
            leave=False,
        )
        t0, seen = time.perf_counter(), 0
        every = cfg.train.checkpoint_every
        for images, labels, indices in batches(
            self.parts.train_set, order[start * local :], local, cfg.data.num_workers
        ):
            self.train_step(images, labels, indices)
            seen += labels.numel() * self.world.size
            bar.update(1)
            self._stop_if_asked()
            if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                self.elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save()
        bar.close()
        seconds = time.perf_counter() - t0
        self.elapsed += seconds
        self.read_statistics()
        self.stats = dist.all_reduce_sum(self.stats, self.world)
        improved = False
        if self.world.is_main:
            record = self._epoch_record(seconds, seen)
            acc = record.get("test_acc", -math.inf)
            improved = acc > self.best_acc
            self.best_acc = max(self.best_acc, acc)
            self.folder.append_metrics(record)
            self._log(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self.stats = {}
        self.save()
        if improved:
            self._write(self.folder.best)

    def _log_step(self, writer: SummaryWriter, terms: dict[str, torch.Tensor]) -> None:
        """TensorBoard, every step: ``train/loss``, ``train/<term>`` (rank 0's own batch) and ``train/lr``,
        at the global step."""
        for name, value in terms.items():
            writer.add_scalar(f"train/{name}", float(value), self.global_step)
        writer.add_scalar("train/lr", self.parts.optimizer.param_groups[0]["lr"], self.global_step)

    def _log(self, r: dict[str, Any]) -> None:
        if self.writer is not None:  # every epoch, at the global step: test/acc, test/loss, epoch/...
            for key, value in r.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step", "lr"):
                    tag = f"test/{key.removeprefix('test_')}" if key.startswith("test_") else f"epoch/{key}"
                    self.writer.add_scalar(tag, value, r["step"])
        if self.progress:
            extra = (
                f" teacher-outliers {100 * r['teacher_outlier_rate']:.1f}%"
                if "teacher_outlier_rate" in r
                else ""
            )
            test = f" test-acc {r['test_acc']:.2f}" if "test_acc" in r else ""
            tqdm.write(
                f"epoch {r['epoch']}/{self.cfg.train.epochs}: loss {r.get('train_loss', math.nan):.4f} "
                f"train-acc {r['train_acc']:.2f}{test}{extra} "
                f"({r['img_per_s']:.0f} img/s)"
            )

    def _summary(self) -> dict[str, Any]:
        records = self.folder.read_metrics()
        last = records[-1] if records else {}
        full = len(self.parts.test_set)
        t0 = time.perf_counter()
        speed = inference_speed(
            self.parts.model, self.parts.test_set, self.device, self.cfg.train.eval_batch_size
        )
        speed_seconds = time.perf_counter() - t0
        return {
            "final_test_acc": last.get("test_acc"),
            # over the evaluations of the whole test set (not those of train.eval_limit's subset)
            "best_test_acc": max(
                (r["test_acc"] for r in records if "test_acc" in r and r.get("test_images", full) == full),
                default=None,
            ),
            "epochs": self.epoch,
            "steps": self.global_step,
            "skipped_steps": self.skipped,
            # all of it, across resumes: set-up, training steps, evaluations, checkpoints, this summary
            "wall_time_s": self.times.total_at(self.started)["total"] + speed_seconds,
            "train_time_s": self.elapsed,  # the training steps only (the time per epoch is from it)
            "eval_time_s": self.times.eval,  # the per-epoch test evaluations
            "setup_time_s": self.times.setup,  # data, models and teacher loaded, before the first step
            "world_size": self.world.size,
            # inference cost of what training produced (a resolution-coupled student is cheaper)
            "params": sum(p.numel() for p in self.parts.model.parameters()),
            "inference_img_per_s": speed,
            "model": self.cfg.model.name,
            "data": self.cfg.data.name,
            "teacher": self.cfg.teacher.checkpoint,
            "distill": self.cfg.distill.method,
            "kdforaa_version": __version__,
            "torch_version": torch.__version__,
            "device": str(self.device),
            # the native kernels' build (prebuilt AVX2 or baseline, built here) or the torch path
            "augment_backend": describe_backend(
                self.cfg.augment.backend, self.device, self.cfg.augment.interpolation
            ),
        }


def resume_config(out: str | Path) -> RunConfig:
    """The resolved config a run folder was started with."""
    return build_config(RunFolder(out).read_config())
