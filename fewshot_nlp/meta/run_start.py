"""What a run sets up before the first meta-step: its Accelerator and checked sources, and
the starting encoder kept in the run when no name can load it."""

from __future__ import annotations

import copy
from pathlib import Path

from ..errors import ConfigError
from ..modeling.lora import is_peft
from ..modeling.pooling import is_mean_pooling
from ..paths import atomic_folder_write
from .saving import BASE_MODEL_DIR


def start_folder(args, model) -> Path | None:
    """Where the run keeps the encoder it starts from, when no name can load it: the base a
    LoRA run's adapter refers to if that is a mean-pooling model (its name is the BERT
    checkpoint it was converted from), or any model built in memory (``maml-base``, the
    meta-value row, adapts it). None when its name loads it."""
    lora = args.adapt_scope == "lora"
    named = bool(getattr(model.config, "_name_or_path", ""))
    if named and not (lora and is_mean_pooling(model)):
        return None
    return Path(args.output_dir) / BASE_MODEL_DIR


def keep_start(folder: Path, model, tokenizer, accelerator, writing) -> None:
    """Write the starting encoder to ``folder`` (before the first step: the weights are
    still the start's). A LoRA model is written without its adapters. ``writing``: the
    run's context for writes into its folder."""
    if accelerator.is_main_process:
        if is_peft(model):
            model = copy.deepcopy(model).unload()

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)

        with writing():
            atomic_folder_write(folder, write)
    accelerator.wait_for_everyone()


def make_accelerator(args):
    """The run's ``Accelerator``; every process must take an equal share of the meta-batch."""
    from accelerate import Accelerator

    report_to = [r for r in args.report_to if r != "none"]
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        cpu=args.use_cpu,
        log_with=report_to or None,
        project_dir=args.output_dir,
    )
    world = accelerator.num_processes
    if args.meta_batch_size % world:
        raise ConfigError(
            f"meta_batch_size={args.meta_batch_size} must be divisible by the "
            f"{world} processes so each takes an equal share."
        )
    return accelerator


def check_sources(args, train_sources, eval_sources) -> None:
    """The sources fit the settings, checked before any work."""
    if args.k_shot == 0:  # the head is the label names alone: every source must have them
        pairs = [s.name for s in train_sources if s.is_pair_task]
        if args.label_names == "never" or pairs:
            raise ConfigError(
                "k_shot=0 episodes are classified by their label names alone, "
                + ("but label_names is 'never'." if not pairs else "")
                + (f"which text-pair sources do not use: drop {pairs}." if pairs else "")
            )
    if args.load_best_model_at_end and not eval_sources:
        raise ConfigError(
            "load_best_model_at_end needs held-out episodes to evaluate: pass eval_sources "
            "(eval_datasets on the command line)."
        )


def check_interpolation_start(args, start) -> None:
    """``weight_interpolation`` mixes the saved model with the encoder the run started from,
    read back from its folder after training: found now, not after the run. An unmerged
    LoRA run needs none (its update is the adapters')."""
    if args.weight_interpolation == 1.0 or (
        args.adapt_scope == "lora" and not args.merge_lora_on_save
    ):
        return
    if not (start and Path(start).is_dir()):
        raise ConfigError(
            f"weight_interpolation={args.weight_interpolation} needs the starting encoder as "
            f"a local folder, and {start!r} is not one: meta-train from a saved checkpoint "
            "folder, or leave weight_interpolation at 1."
        )


def flat_config(args) -> dict:
    """The arguments as flat scalars, for the trackers' run config."""
    from dataclasses import asdict

    return {
        k: (v if isinstance(v, (int, float, str, bool)) else str(v))
        for k, v in asdict(args).items()
    }
