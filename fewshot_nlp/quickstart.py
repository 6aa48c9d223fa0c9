"""The whole story on the embedded default: meta-train, evaluate, adapt, export, pipeline."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TRAIN_SPECS = ["banking77:train:01:train", "clinc150:train:01:train", "snips", "trec"]
HELD_OUT = "banking77:train:01:test"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fewshot-nlp quickstart", description=__doc__)
    parser.add_argument("--data_dir", "--data-dir", default=None, help="Data directory.")
    parser.add_argument("--output_dir", "--output-dir", default="runs/quickstart", help="Output.")
    parser.add_argument("--max_steps", "--max-steps", type=int, default=100, help="Meta-steps.")
    parser.add_argument(
        "--warmup_steps",
        "--warmup-steps",
        type=int,
        default=100,
        help="Feature warm-up distillation steps (0: off).",
    )
    parser.add_argument(
        "--eval_episodes", "--eval-episodes", type=int, default=60, help="Held-out episodes."
    )
    args = parser.parse_args(argv)

    from transformers import pipeline

    from .adapt import adapt
    from .cli import load_classifier, parse_source_spec, resolve_model_path
    from .data.sources import TaskSource
    from .evaluation import FewShotModel, evaluate_episodes
    from .export import export
    from .meta.arguments import MetaTrainingArguments
    from .meta.trainer import EVAL_SEED_OFFSET, MetaTrainer

    out = Path(args.output_dir)
    t0 = time.perf_counter()
    print(
        f"1/4 feature warm-up, then first-order LoRA-MAML of the packaged MiniLM on "
        f"{', '.join(TRAIN_SPECS)}"
    )
    targs = MetaTrainingArguments(
        output_dir=str(out / "meta"),
        overwrite_output_dir=True,
        max_steps=args.max_steps,
        learning_rate=5e-4,
        meta_batch_size=2,
        n_way="5",
        k_shot=2,
        q_query=4,
        inner_steps=1,
        inner_learning_rate=0.05,
        first_order=True,
        adapt_scope="lora",
        logging_steps=10,
        eval_episodes=args.eval_episodes,
        max_length=32,
        temperature=0.5,
        seed=0,
        feature_warmup_steps=args.warmup_steps,
    )
    train = [parse_source_spec(s, args.data_dir) for s in TRAIN_SPECS]
    evals = [parse_source_spec(HELD_OUT, args.data_dir)]
    # The un-meta-trained MiniLM, adapted its default way, on the episodes evaluate() draws.
    base = evaluate_episodes(
        FewShotModel(resolve_model_path("minilm"), max_length=32),
        evals,
        n_way=5,
        k_shots=[2],
        q_query=4,
        episodes=args.eval_episodes,
        seed=targs.seed + EVAL_SEED_OFFSET,
        methods=["maml"],
        progress=False,
    )
    base_accuracy = base[0]["results"]["2"]["accuracy"]["mean"]
    model, tokenizer = load_classifier(resolve_model_path("minilm"))
    trainer = MetaTrainer(model, targs, train, evals, tokenizer=tokenizer)
    warmed = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    print(
        f"2/4 held-out banking77 classes (fold 01 test), 5-way 2-shot, {args.eval_episodes} "
        f"episodes, query accuracy: base {base_accuracy:.3f} -> feature warm-up {warmed:.3f} "
        f"-> meta-trained {after:.3f}"
    )

    held = parse_source_spec(HELD_OUT, args.data_dir)
    classes = held.label_names[:8]
    few = [(held.texts[i], c) for c in classes for i in held.label_index[c][:5]]
    adapted = adapt(str(out / "meta"), few)
    export_dir = export(adapted, tokenizer, out / "classifier", overwrite=True)
    print(
        f"3/4 adapted to {len(classes)} new banking77 intents from {len(few)} examples; "
        f"exported to {export_dir}"
    )

    test = TaskSource.from_data_dir("banking77", args.data_dir, split="test")
    classifier = pipeline("text-classification", model=str(export_dir))
    texts = [test.texts[test.label_index[c][0]] for c in classes[:4]]
    print("4/4 pipeline('text-classification') on the export (test-set texts):")
    for text, c, pred in zip(texts, classes, classifier(texts)):
        print(f"  {text[:60]!r:<64} -> {pred['label']} ({pred['score']:.2f})  [true: {c}]")
    summary = {
        "base": base_accuracy,
        "warmed_up": warmed,
        "meta_trained": after,
        "seconds": round(time.perf_counter() - t0, 1),
        "export": str(export_dir),
    }
    (out / "quickstart.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']} s")
    return 0
