"""What a run sets up before the first meta-step: its Accelerator and checked sources, the
feature warm-up, keeping the starting encoder in the run when no name can load it, and the
frozen anchor copy."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..modeling.pooling import is_mean_pooling
from ..paths import atomic_folder_write
from .batched import stack_episodes
from .maml import MAML
from .saving import BASE_MODEL_DIR, WARMED_BASE_DIR, load_model_weights
from .warmup import FeatureWarmupConfig, warm_up_features


def warm_up_run(args, accelerator, model, tokenizer, sources) -> dict | None:
    """Warm the head's input features up once per run (see ``meta.warmup``).

    LoRA runs keep the warmed base in ``output_dir/warmed_base`` (``keep_start``); a
    resumed LoRA run loads it back instead of warming up again.
    """
    if not args.feature_warmup_steps:
        return None
    if is_mean_pooling(model):
        raise ConfigError(
            "feature_warmup_steps distils mean pooling into the head's input, but this "
            "model's head already reads the mean of the last hidden states "
            "(pooling='mean'): set feature_warmup_steps to 0."
        )
    folder = Path(args.output_dir) / WARMED_BASE_DIR
    if args.resume_from_checkpoint:
        if args.adapt_scope == "lora":
            if not folder.is_dir():
                raise ConfigError(f"Resuming a LoRA run with feature warm-up needs {folder}.")
            load_model_weights(model, folder)
        return None
    if tokenizer is None:
        raise ConfigError("feature_warmup_steps needs the tokenizer: MetaTrainer(tokenizer=...).")
    model.to(accelerator.device)
    texts = [text for source in sources for text in source.texts]
    config = FeatureWarmupConfig(
        steps=args.feature_warmup_steps,
        seed=args.seed,
        learning_rate=args.feature_warmup_learning_rate,
    )
    metrics = warm_up_features(
        model, tokenizer, texts, config, progress=accelerator.is_local_main_process
    )
    if accelerator.num_processes > 1:  # one set of warmed weights for every process
        from accelerate.utils import broadcast

        for param in model.parameters():
            param.data.copy_(broadcast(param.data, from_process=0))
    return metrics


def keep_start(args, accelerator, model, tokenizer, writing) -> Path | None:
    """Save in the run what no name can load: the base a LoRA run's adapter refers to, and
    the encoder any run started from if it has no name (``maml-base``, the meta-value row,
    adapts it). ``writing``: the run's context for writes into its folder.

    A warmed-up base differs from the checkpoint it came from; a model built in memory has
    no name at all, and a mean-pooling model's name is the BERT checkpoint it was converted
    from: these are kept in the run (``warmed_base`` / ``base_model``).
    """
    lora = args.adapt_scope == "lora"
    named = bool(getattr(model.config, "_name_or_path", ""))
    if args.feature_warmup_steps:
        if not lora:
            return None
        folder = Path(args.output_dir) / WARMED_BASE_DIR
    elif not named or (lora and is_mean_pooling(model)):
        folder = Path(args.output_dir) / BASE_MODEL_DIR
    else:
        return None
    if not args.resume_from_checkpoint and accelerator.is_main_process:

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)

        with writing():
            atomic_folder_write(folder, write)
    accelerator.wait_for_everyone()
    return folder


def frozen_anchor(args, model, device) -> MAML | None:
    """A frozen copy of the starting encoder, whose features the outer loss stays near
    (``anchor_weight``); none when the weight is 0."""
    if not args.anchor_weight:
        return None
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    config = replace(args.maml_config(), adapt_scope="head", learn_inner_lr="none")
    return MAML(frozen, replace(config, gradient_checkpointing=False)).to(device)


def anchor_loss(anchor: MAML, group, out) -> torch.Tensor:
    """Mean squared distance of the query texts' unit features from the starting encoder's."""
    query = group[0].query if len(group) == 1 else stack_episodes(group).query
    with torch.no_grad():
        start = anchor.features({}, query)
    moved = F.normalize(out.query_features.float(), dim=-1)
    return (moved - F.normalize(start.float(), dim=-1)).pow(2).sum(-1).mean()


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
