"""The whole story on the embedded default: meta-train, evaluate, adapt, export, pipeline."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fewshot-nlp quickstart", description=__doc__)
    parser.add_argument("--data_dir", "--data-dir", default=None, help="Data directory.")
    parser.add_argument(
        "--output_dir", "--output-dir", default="runs/quickstart", help="Output folder."
    )
    parser.add_argument(
        "--max_steps", "--max-steps", type=int, default=100, help="Meta-training steps."
    )
    parser.add_argument(
        "--eval_episodes", "--eval-episodes", type=int, default=60, help="Held-out episodes."
    )
    args = parser.parse_args(argv)

    import torch
    from transformers import pipeline

    from .adapt import adapt
    from .cli import load_classifier, parse_source_spec, resolve_model_path
    from .data.sources import TaskSource
    from .export import export
    from .meta.arguments import MetaTrainingArguments
    from .meta.trainer import MetaTrainer

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    out = Path(args.output_dir)
    t0 = time.perf_counter()
    train_specs = ["banking77:train:01:train", "clinc150:train:01:train", "snips", "trec"]
    held_out = "banking77:train:01:test"
    print(f"1/4 meta-train: packaged MiniLM, first-order LoRA-MAML on {', '.join(train_specs)}")
    model, tokenizer = load_classifier(resolve_model_path("minilm"))
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
    )
    train = [parse_source_spec(s, args.data_dir) for s in train_specs]
    evals = [parse_source_spec(held_out, args.data_dir)]
    trainer = MetaTrainer(model, targs, train, evals, tokenizer=tokenizer)
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    print(
        f"2/4 held-out banking77 classes (fold 01 test), 5-way 2-shot, {args.eval_episodes} "
        f"episodes: query accuracy {before:.3f} before -> {after:.3f} after meta-training"
    )

    held = parse_source_spec(held_out, args.data_dir)
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
        "before": before,
        "after": after,
        "seconds": round(time.perf_counter() - t0, 1),
        "export": str(export_dir),
    }
    (out / "quickstart.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']} s")
    return 0
