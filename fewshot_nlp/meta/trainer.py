"""`MetaTrainer`: meta-training with Accelerate, resumable checkpoints and callbacks."""

from __future__ import annotations

import json
import logging
import signal
import time
import warnings
from pathlib import Path

import torch
from transformers import TrainerControl, TrainerState
from transformers.optimization import get_scheduler

from ..data.episodes import EpisodeSampler
from ..errors import ConfigError, TrainingError
from ..hub import check_push_to_hub, push_folder_to_hub
from ..modeling.lora import apply_lora
from ..paths import (
    atomic_folder_write,
)
from . import checkpointing
from .arguments import MetaTrainingArguments
from .callbacks import as_trainer_callback, callback_handler
from .checkpointing import (
    STATE_FILE,
    CheckpointRegistry,
    prune_checkpoints,
    resume_checkpoint,
    run_fingerprint,
    state_json,
)
from .maml import MAML
from .meta_step import average_gradients, episode_loss, window_logs
from .model import FewShotModel
from .run_folder import RunFolder, check_run_output_dir
from .run_start import (
    check_interpolation_start,
    check_sources,
    flat_config,
    keep_start,
    make_accelerator,
    start_folder,
)
from .saving import load_inner_lrs, load_model_weights
from .validation import run_info, validation_stats

logger = logging.getLogger(__name__)


class MetaTrainer:
    """Meta-trains ``model`` on episodes from ``train_sources`` (mirrors ``transformers.Trainer``).

    Each process draws its own share of the meta-batch; gradients are averaged across
    processes before every update, so N processes equal one process on the whole batch.
    """

    def __init__(
        self,
        model,
        args: MetaTrainingArguments,
        train_sources,
        eval_sources=None,
        tokenizer=None,
        callbacks=None,
        lora_config=None,
    ) -> None:
        from accelerate.utils import set_seed

        self.args = args
        self.accelerator = make_accelerator(args)
        set_seed(args.seed)
        train_sources, eval_sources = list(train_sources), list(eval_sources or [])
        check_sources(args, train_sources, eval_sources)
        # The encoder the run started from: the baselines of `evaluate` default to it.
        self.base_encoder = getattr(getattr(model, "config", None), "_name_or_path", None) or None
        check_run_output_dir(args, reads=[self.base_encoder] if self.base_encoder else [])
        if args.push_to_hub:  # found now, not after the whole run
            check_push_to_hub(args.hub_model_id)
        self.run_folder = RunFolder(
            self.output_dir,
            start_over=args.overwrite_output_dir and not args.resume_from_checkpoint,
        )
        self._writing = self.run_folder.writing
        # Where the run keeps its starting encoder (written by train(), not here).
        self._start_dir = base_dir = start_folder(args, model)
        if base_dir is None:  # else the run keeps its start itself
            check_interpolation_start(args, self.base_encoder)
        if args.adapt_scope == "lora":
            model = apply_lora(model, lora_config)
            if base_dir is not None:
                model.peft_config["default"].base_model_name_or_path = str(base_dir.resolve())
        self.maml = MAML(model, args.maml_config()).to(self.accelerator.device)
        self.tokenizer = tokenizer
        # The run as users load it: evaluation and saving go through the same object.
        self.fewshot = FewShotModel(self.maml, tokenizer, max_length=args.max_length)
        self.collator = self.fewshot.collator
        self.train_sources, self.eval_sources = train_sources, eval_sources
        self._optimization()
        self.callback_handler = callback_handler(
            callbacks, self.model, tokenizer, self.optimizer, self.scheduler
        )
        self.state = TrainerState(
            max_steps=args.max_steps,
            logging_steps=args.logging_steps,
            eval_steps=args.eval_steps,
            save_steps=args.save_steps,
        )
        self.control = TrainerControl()
        self._stop_signal: int | None = None
        self._nan_steps = 0
        self._pending_best = False  # an evaluation beat the best: the next checkpoint is best

    def _optimization(self) -> None:
        """Episode stream, optimizer, schedule, and the registry that checkpoints them."""
        args, acc = self.args, self.accelerator
        self.sampler = EpisodeSampler(
            self.train_sources,
            args.parsed_n_way(),
            args.k_shot,
            args.q_query,
            temperature=args.temperature,
            seed=args.seed,
        ).for_process(acc.process_index, acc.num_processes)
        self.optimizer = torch.optim.AdamW(
            self.maml.meta_parameters(), lr=args.learning_rate, weight_decay=args.weight_decay
        )
        self.scheduler = get_scheduler(
            args.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=args.warmup_steps,
            num_training_steps=args.max_steps,
        )
        self.checkpoint_state = CheckpointRegistry()
        for name, stateful in (
            ("optimizer", self.optimizer),
            ("scheduler", self.scheduler),
            ("sampler", self.sampler),
        ):
            self.checkpoint_state.register(name, stateful)

    # ------------------------------------------------------------------ properties
    @property
    def output_dir(self) -> Path:
        return Path(self.args.output_dir)

    @property
    def model(self):
        return self.maml.model

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: parameter names/shapes and adaptation."""
        return run_fingerprint(self.maml)

    # ------------------------------------------------------------------ training
    def train(self) -> TrainerState:
        args = self.args
        if self._start_dir is not None and not args.resume_from_checkpoint:
            keep_start(self._start_dir, self.model, self.tokenizer, self.accelerator, self._writing)
        if args.resume_from_checkpoint:
            self._resume_from(args.resume_from_checkpoint)
        if self.accelerator.trackers == [] and any(r != "none" for r in args.report_to):
            with self._writing():
                self.accelerator.init_trackers("fewshot-nlp", config=flat_config(args))
        self._call("on_train_begin")
        if args.eval_steps and self.eval_sources and self.state.global_step == 0:
            # Step 0 is the encoder before meta-training: its score is the baseline of the
            # curve (the meta-value on validation), and a candidate for the best checkpoint.
            self.evaluate()
            if self._pending_best and args.load_best_model_at_end:
                self._save_checkpoint()
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.accelerator.end_training()
        if self._stop_signal is None:
            if args.load_best_model_at_end and self.state.best_model_checkpoint:
                self._load_weights(Path(self.state.best_model_checkpoint))
            self.save_model(args.output_dir)
        self._call("on_train_end")
        return self.state

    @property
    def interrupted_by(self) -> int | None:
        """The signal (SIGINT, SIGTERM) that stopped ``train()`` early, if one did: the run
        then holds a checkpoint to resume from, not the final model."""
        return self._stop_signal

    def _on_signal(self, signum, _frame) -> None:
        if self._stop_signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum
        if self.accelerator.is_main_process:
            logger.warning("Signal %s: finishing this step, then saving a checkpoint.", signum)

    def _loop(self) -> None:
        from tqdm.auto import tqdm

        args, state = self.args, self.state
        bar = tqdm(
            total=args.max_steps,
            initial=state.global_step,
            desc="meta-train",
            disable=not self.accelerator.is_local_main_process,
            dynamic_ncols=True,
        )
        window: list[dict] = []
        start = time.perf_counter()
        while state.global_step < args.max_steps:
            # a callback's should_log / should_evaluate / should_save is for one step
            self.control = self.callback_handler.on_step_begin(args, state, self.control)
            metrics = self._meta_step(detailed=(state.global_step + 1) % args.logging_steps == 0)
            if metrics is None:
                continue
            state.global_step += 1
            window.append(metrics)
            bar.update(1)
            bar.set_postfix(
                loss=f"{metrics['meta_loss']:.3f}", acc=f"{metrics['query_accuracy']:.3f}"
            )
            self._call("on_step_end")
            step = state.global_step
            if step % args.logging_steps == 0 or self.control.should_log:
                elapsed = time.perf_counter() - start
                self._log(window, elapsed)
                window, start = [], time.perf_counter()
            scheduled = args.eval_steps and step % args.eval_steps == 0
            if (scheduled or self.control.should_evaluate) and self.eval_sources:
                self.evaluate()
            stop_now = self._stop_signal is not None or self.control.should_training_stop
            periodic = (args.save_steps and step % args.save_steps == 0) or self.control.should_save
            # A better evaluation is saved at once, so the best checkpoint holds exactly the
            # weights that were evaluated (not those of a later save).
            best_now = self._pending_best and args.load_best_model_at_end
            if periodic or stop_now or best_now:
                self._save_checkpoint()
            if stop_now:
                break
        bar.close()

    def _meta_step(self, detailed: bool) -> dict | None:
        """One outer update (with accumulation); ``None`` if skipped for a non-finite loss."""
        args, acc = self.args, self.accelerator
        local = args.meta_batch_size // acc.num_processes
        self.maml.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        count = 0
        failed = None
        for _ in range(args.gradient_accumulation_steps):
            episodes = [self.collator(self.sampler.sample()).to(acc.device) for _ in range(local)]
            for episode in episodes:
                share = 1 / (local * args.gradient_accumulation_steps)
                try:
                    with acc.autocast():
                        loss, metrics = episode_loss(self.maml, episode, detailed)
                    (loss * share).backward()
                except TrainingError as error:
                    failed = str(error)
                    continue
                for key, value in metrics.items():
                    totals[key] = totals.get(key, 0.0) + value
                count += 1
        flag = torch.tensor(float(failed is not None), device=acc.device)
        if acc.reduce(flag).item() > 0:
            return self._skip_step(failed or "another process hit a non-finite loss")
        average_gradients(self.accelerator, self.maml.meta_parameters())
        if args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.maml.meta_parameters(), args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        metrics = {k: v / count for k, v in totals.items()}
        metrics["meta_loss"] = metrics.pop("query_loss")
        return metrics

    def _skip_step(self, reason: str) -> None:
        self._nan_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        if self._nan_steps > self.args.max_nan_steps:
            raise TrainingError(
                f"{self._nan_steps} meta-steps had non-finite losses (last: {reason}); stopping. "
                "The last checkpoint is kept. Lower learning_rate / inner_learning_rate."
            )
        warnings.warn(
            f"Skipping a meta-step: {reason} ({self._nan_steps}/{self.args.max_nan_steps})",
            stacklevel=2,
        )
        return None

    # ------------------------------------------------------------------ logging / eval
    def _log(self, window: list[dict], elapsed: float) -> None:
        logs = window_logs(window, elapsed, self.args.meta_batch_size, self.maml)
        logs["learning_rate"] = self.scheduler.get_last_lr()[0]
        logs["step"] = self.state.global_step
        self.state.log_history.append(logs)
        if self.accelerator.is_main_process:
            self.accelerator.log(logs, step=self.state.global_step)
        self._call("on_log", logs=logs)

    @torch.no_grad()
    def evaluate(self, eval_sources=None, episodes: int | None = None) -> dict[str, float]:
        """Mean query accuracy after adaptation on held-out episodes (the same ones every
        time), shaped as ``eval_n_way`` / ``eval_k_shot`` say: ``eval_accuracy`` is the mean
        over the shot counts, ``eval_accuracy_<k>shot`` each one."""
        sources = list(eval_sources or self.eval_sources)
        if not sources:
            raise ConfigError("evaluate() needs eval_sources (MetaTrainer(eval_sources=...)).")
        args = self.args
        self.maml.eval()
        n = max((episodes or args.eval_episodes) // self.accelerator.num_processes, 1)
        shots = args.eval_k_shot or [args.k_shot]
        per_shot = {
            k: validation_stats(self.fewshot, self.accelerator, args, sources, k, n) for k in shots
        }
        metrics = {
            "eval_accuracy": sum(acc for acc, _ in per_shot.values()) / len(shots),
            "eval_loss": sum(loss for _, loss in per_shot.values()) / len(shots),
        }
        if len(shots) > 1:
            metrics.update({f"eval_accuracy_{k}shot": acc for k, (acc, _) in per_shot.items()})
        if self.state.best_metric is None or metrics["eval_accuracy"] > self.state.best_metric:
            self.state.best_metric = metrics["eval_accuracy"]
            self._pending_best = True
        self.state.log_history.append({**metrics, "step": self.state.global_step})
        if self.accelerator.is_main_process:
            self.accelerator.log(metrics, step=self.state.global_step)
        self._call("on_evaluate", metrics=metrics)
        return metrics

    # ------------------------------------------------------------------ saving
    def save_model(self, output_dir: str | Path | None = None) -> Path | None:
        """The meta-model as a Hub-format folder (main process only)."""
        output_dir = Path(output_dir or self.args.output_dir)
        self.accelerator.wait_for_everyone()  # every process, so all have finished their steps
        if not self.accelerator.is_main_process:
            return None
        with self._writing(output_dir):
            self.fewshot.save_pretrained(
                output_dir, info=run_info(self), merge_lora=self.args.merge_lora_on_save
            )
            (output_dir / STATE_FILE).write_text(state_json(self.state, self.fingerprint()))
            if self.args.weight_interpolation != 1.0:  # from the folder: it names the start
                run = FewShotModel.from_pretrained(output_dir)
                mixed = run.interpolated(self.args.weight_interpolation)
                mixed.save_pretrained(output_dir, merge_lora=self.args.merge_lora_on_save)
        if self.args.push_to_hub:
            push_folder_to_hub(output_dir, self.args.hub_model_id)
        return output_dir

    def _save_checkpoint(self) -> None:
        acc = self.accelerator
        step = self.state.global_step
        final = self.output_dir / f"checkpoint-{step}"
        if self._pending_best:
            self.state.best_model_checkpoint = str(final)
            self._pending_best = False
        rng = checkpointing.process_rng_states(acc)  # each process resumes its own stream
        if acc.is_main_process:

            def write(folder: Path) -> None:
                self.fewshot.save_pretrained(folder, info=run_info(self))
                self.checkpoint_state.save(folder)
                checkpointing.save_file(rng, str(folder / checkpointing.RNG_FILE))
                (folder / STATE_FILE).write_text(state_json(self.state, self.fingerprint()))
                checkpointing.write_manifest(folder)  # last: a valid manifest means whole

            try:
                with self._writing():
                    atomic_folder_write(final, write)
            except OSError as error:
                raise TrainingError(
                    f"Could not write checkpoint {final}: {error}. Earlier checkpoints are intact; "
                    "free disk space or point output_dir at a writable folder, then resume."
                ) from error
            prune_checkpoints(
                self.output_dir, self.args.save_total_limit, self.state.best_model_checkpoint
            )
        if acc.num_processes > 1:
            acc.wait_for_everyone()
        self._call("on_save")

    # ------------------------------------------------------------------ resuming
    def _resume_from(self, spec: str | bool) -> None:
        resume_checkpoint(self.output_dir, spec, self._try_resume)

    def _try_resume(self, folder: Path) -> str | None:
        try:
            self._resume(folder)
        except ConfigError:
            raise  # another run's checkpoint: falling back would hide the real problem
        except Exception as error:  # a damaged file: say which, and why
            return f"{type(error).__name__}: {error}"
        return None

    def _load_weights(self, folder: Path) -> None:
        load_model_weights(self.model, folder)
        if self.maml.log_inner_lrs is not None:
            load_inner_lrs(self.maml, folder)

    def _resume(self, folder: Path) -> None:
        saved = json.loads((folder / STATE_FILE).read_text())
        if saved.get("fingerprint") != self.fingerprint():
            raise ConfigError(
                f"Checkpoint {folder} was written by another model or adaptation config "
                f"(fingerprint {saved.get('fingerprint')} != {self.fingerprint()}). Resume with "
                "the same model and meta arguments, or start a new output_dir."
            )
        self._load_weights(folder)
        self.checkpoint_state.load(folder)
        checkpointing.restore_rng(self.accelerator, folder)
        state = saved["state"]
        for key in ("global_step", "log_history", "best_metric", "best_model_checkpoint"):
            setattr(self.state, key, state.get(key))
        if self.accelerator.is_main_process:
            logger.info("Resumed from %s at step %s.", folder, self.state.global_step)

    # ------------------------------------------------------------------ callbacks
    @property
    def callbacks(self) -> list:
        return self.callback_handler.callbacks

    def add_callback(self, callback) -> None:
        """As ``transformers.Trainer.add_callback``; objects that only define some
        ``on_*`` methods are accepted too."""
        self.callback_handler.add_callback(as_trainer_callback(callback))

    def _call(self, event: str, **kwargs) -> None:
        handler = getattr(self.callback_handler, event)
        self.control = handler(self.args, self.state, self.control, **kwargs)
