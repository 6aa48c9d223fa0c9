"""Growing a classifier (issue 20): add labels to an export without the old texts.

On banking77 and clinc150 (fixed 5-shot files, whole test files): adapt on a random 60 % of
the classes, export, then add the other 40 % from their own shots only (`adapt(export, new)`),
against adapting all classes at once from all examples. Also: accuracy on the old classes
before and after the addition, removing 10 labels (accuracy on the rest before and after),
and the seconds to add 10 classes x 5 shots to a 140-class clinc150 classifier (load, read
the new texts, refit; 2 CPU cores). Results are appended to OUTPUT_DIR/grow.jsonl.

    python scripts/bench/grow.py --data_dir ../shared/data --model runs/meta_value/names-lora
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, bench_parser, publish  # noqa: E402

START, END = "<!-- grow:start -->", "<!-- grow:end -->"


def accuracy(classifier, tokenizer, texts, labels, max_length) -> float:
    from fewshot_nlp.modeling.scoring import text_logits

    if not texts:
        return float("nan")
    logits = text_logits(classifier, tokenizer, texts, max_length=max_length)
    names = classifier.config.id2label
    return sum(names[int(i)] == y for i, y in zip(logits.argmax(-1), labels)) / len(texts)


def run_dataset(name: str, args, work: Path) -> dict:
    from transformers import AutoTokenizer

    from fewshot_nlp import TaskSource
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.export import export

    root = Path(args.data_dir) / name
    train = TaskSource.from_files(root / "fewshot" / "train_5.jsonl", name="train")
    test = TaskSource.from_files(root / "test.jsonl", name=name)
    classes = list(train.label_names)
    rng = random.Random(args.seed)
    rng.shuffle(classes)
    cut = round(0.6 * len(classes))
    old, new = set(classes[:cut]), set(classes[cut:])
    pairs = list(zip(train.texts, train.labels))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    length = json.loads((Path(args.model) / "fewshot_nlp.json").read_text()).get("max_length")

    def subset(keep):
        return [(t, y) for t, y in pairs if y in keep]

    def on(keep):
        rows = [(t, y) for t, y in zip(test.texts, test.labels) if y in keep]
        return [t for t, _ in rows], [y for _, y in rows]

    all_texts, all_labels = on(set(classes))
    at_once = adapt(args.model, pairs)
    row = {"dataset": name, "classes": len(classes), "old": len(old), "new": len(new)}
    row["all_at_once"] = accuracy(at_once, tokenizer, all_texts, all_labels, length)
    old_texts, old_labels = on(old)
    # the reference for the old classes: the same texts, all classes adapted at once
    row["old_all_at_once"] = accuracy(at_once, tokenizer, old_texts, old_labels, length)
    first = export(adapt(args.model, subset(old)), tokenizer, work / f"{name}-old")
    first_model = _load(first)
    row["old_before"] = accuracy(first_model, tokenizer, old_texts, old_labels, length)
    grown = adapt(str(first), subset(new))
    row["grown"] = accuracy(grown, tokenizer, all_texts, all_labels, length)
    row["old_after"] = accuracy(grown, tokenizer, old_texts, old_labels, length)
    grown_folder = export(grown, tokenizer, work / f"{name}-grown")
    removed = rng.sample(sorted(classes), 10)
    rest_texts, rest_labels = on(set(classes) - set(removed))
    row["rest_before"] = accuracy(grown, tokenizer, rest_texts, rest_labels, length)
    shrunk = adapt(str(grown_folder), remove_labels=removed)
    row["rest_after"] = accuracy(shrunk, tokenizer, rest_texts, rest_labels, length)
    return row


def add_ten_seconds(args, work: Path) -> dict:
    """Seconds to add 10 classes x 5 shots to a 140-class clinc150 export (in process:
    load the export, read 50 texts, refit 150 classes)."""
    from transformers import AutoTokenizer

    from fewshot_nlp import TaskSource
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.export import export

    root = Path(args.data_dir) / "clinc150"
    train = TaskSource.from_files(root / "fewshot" / "train_5.jsonl", name="train")
    classes = sorted(train.label_names)
    added = set(random.Random(args.seed + 1).sample(classes, 10))
    pairs = list(zip(train.texts, train.labels))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    base = export(
        adapt(args.model, [p for p in pairs if p[1] not in added]), tokenizer, work / "c140"
    )
    new = [p for p in pairs if p[1] in added]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        adapt(str(base), new)
        times.append(time.perf_counter() - start)
    return {"dataset": "clinc150", "add_10_classes_seconds": sorted(times)[1], "runs": times}


def _load(folder):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder).eval()


def report(rows: list[dict], model: str) -> str:
    lines = [
        START,
        f"Model: `{model}` (its recorded adaptation: head only, logistic regression, label "
        "names when they help). Fixed 5-shot files, whole test files; 60 % of the classes "
        "first, the other 40 % added from their own shots.",
        "",
        "| dataset | all at once | grown | difference | old classes: alone | grown "
        "| all at once | 10 labels removed: rest before | after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "grown" not in r:
            continue
        lines.append(
            f"| {r['dataset']} | {100 * r['all_at_once']:.2f} | {100 * r['grown']:.2f} | "
            f"{100 * (r['grown'] - r['all_at_once']):+.2f} | {100 * r['old_before']:.2f} | "
            f"{100 * r['old_after']:.2f} | {100 * r.get('old_all_at_once', float('nan')):.2f} | "
            f"{100 * r['rest_before']:.2f} | {100 * r['rest_after']:.2f} |"
        )
    for r in rows:
        if "add_10_classes_seconds" in r:
            lines += [
                "",
                f"Adding 10 classes x 5 shots to a 140-class clinc150 export: "
                f"{r['add_10_classes_seconds']:.2f} s (median of 3, in process: load the "
                "export, read the 50 new texts, refit the 150-class head; 2 CPU cores).",
            ]
    return "\n".join([*lines, END])


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", required=True, help="A (meta-trained) model folder.")
    parser.add_argument("--output_dir", default="runs/grow", help="Results go here.")
    parser.add_argument("--seed", type=int, default=0, help="Which classes come first.")
    parser.add_argument("--benchmarks_file", default=None, help="Write the table there too.")
    args = parser.parse_args()
    results = Results(Path(args.output_dir) / "grow.jsonl")
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        jobs = [(n, run_dataset) for n in ("banking77", "clinc150")]
        jobs.append(("clinc150/time", lambda _n, a, w: add_ten_seconds(a, w)))
        for key, job in jobs:
            if key not in results:
                results.add(key, **job(key, args, Path(tmp)))
    rows = list(results.rows.values())
    text = report(rows, args.model)
    publish(text, args.benchmarks_file, START, END)


if __name__ == "__main__":
    main()
