"""`fewshot-nlp meta-train`: meta-train an encoder with MAML on episodes from many
datasets (every ``MetaTrainingArguments`` field is a flag and a YAML key)."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import check_push, resolve_model_path


def main(argv: list[str]) -> int:
    from ..data.sources import TaskSource
    from ..meta.arguments import parse_meta_train_args
    from ..meta.run_folder import check_run_output_dir
    from ..meta.trainer import MetaTrainer

    model_args, args = parse_meta_train_args(
        argv,
        prog="fewshot-nlp meta-train",
        description="Meta-train an encoder with MAML on episodes from many datasets.",
    )
    check_run_output_dir(args, reads=[resolve_model_path(model_args.model_name_or_path)])
    if args.push_to_hub:
        check_push(args.hub_model_id)
    model, tokenizer, lora = model_args.load()
    train = [TaskSource.from_spec(s, model_args.data_dir) for s in model_args.train_datasets]
    evals = [TaskSource.from_spec(s, model_args.data_dir) for s in model_args.eval_datasets]
    trainer = MetaTrainer(model, args, train, evals or None, tokenizer=tokenizer, lora_config=lora)
    state = trainer.train()
    signum = trainer.interrupted_by
    if signum is not None:
        from ..meta.checkpointing import sorted_checkpoints

        if trainer.accelerator.is_main_process:
            checkpoints = sorted_checkpoints(Path(args.output_dir))
            where = checkpoints[-1] if checkpoints else args.output_dir
            print(
                f"Interrupted at step {state.global_step} of {args.max_steps}: checkpoint "
                f"written to {where}; no final meta-model in {args.output_dir} yet. Resume "
                f"with the same command plus --resume_from_checkpoint true.",
                file=sys.stderr,
            )
        return 128 + signum  # 130 for Ctrl-C, as shells expect
    if trainer.accelerator.is_main_process:
        print(f"Meta-model written to {args.output_dir} after {state.global_step} steps.")
    return 0
