"""`predict` speed: texts/s and peak memory of the CLI's path (equal-length batches, exact
scores) against a plain batched `pipeline()` (padded batches) and one text at a time, on the
same classifier and texts, each in its own process (so each peak memory is its own).

The classifier is the packaged MiniLM with mean pooling, its head fitted on banking77's
5-shot file (no meta-training needed to time inference). The texts are the shared test
files, cycled to --texts.

    python scripts/bench/predict_speed.py --data_dir ../shared/data --texts 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = ("banking77", "clinc150", "snips", "atis", "trec", "agnews")


def texts_for(data_dir: str, count: int) -> list[str]:
    texts: list[str] = []
    for name in DATASETS:
        path = Path(data_dir) / name / "test.jsonl"
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines() if line]
    return [texts[i % len(texts)] for i in range(count)]


def make_classifier(data_dir: str, folder: Path) -> None:
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.export import export
    from fewshot_nlp.modeling.pretrained import load_classifier

    model, tokenizer = load_classifier("minilm", "eager", pooling="mean")
    few = Path(data_dir) / "banking77" / "fewshot" / "train_5.jsonl"
    export(adapt(model, str(few), tokenizer=tokenizer), tokenizer, folder)


def run_one(route: str, folder: str, texts_file: str, batch_size: int) -> None:
    """In a child process: time one route, print one JSON line."""
    from transformers import pipeline

    from fewshot_nlp.predict import classify_texts

    texts = json.loads(Path(texts_file).read_text())
    classifier = pipeline("text-classification", model=folder, top_k=3)
    start = time.perf_counter()
    if route == "fewshot-nlp predict (equal-length batches)":
        classify_texts(classifier, texts, batch_size)
    elif route == "pipeline, padded batches":
        classifier(texts, batch_size=batch_size, truncation=True)
    else:  # one at a time
        for text in texts:
            classifier([text], truncation=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"route": route, "texts": len(texts), "seconds": seconds, "peak_mb": peak}))


ROUTES = ("fewshot-nlp predict (equal-length batches)", "pipeline, padded batches", "one by one")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="The shared data directory.")
    parser.add_argument("--texts", type=int, default=20000, help="How many texts to classify.")
    parser.add_argument("--batch_size", type=int, default=32, help="Texts per batch.")
    parser.add_argument("--one_by_one", type=int, default=2000, help="Texts for that route.")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        route, folder, texts_file, batch = args.child
        run_one(route, folder, texts_file, int(batch))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "classifier"
        make_classifier(args.data_dir, folder)
        rows = []
        for route in ROUTES:
            count = args.one_by_one if route == "one by one" else args.texts
            texts_file = Path(tmp) / f"texts-{count}.json"
            texts_file.write_text(json.dumps(texts_for(args.data_dir, count)))
            child = [sys.executable, __file__, "--data_dir", args.data_dir, "--child", route]
            child += [str(folder), str(texts_file), str(args.batch_size)]
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        ours, padded = rows[0], rows[1]
        for row in rows:
            rate = row["texts"] / row["seconds"]
            print(
                f"{row['route']:<45} {row['texts']:>6} texts {rate:8.1f} texts/s  "
                f"peak {row['peak_mb']:.0f} MB"
            )
        ratio = (ours["texts"] / ours["seconds"]) / (padded["texts"] / padded["seconds"])
        print(f"speed ratio, ours / padded pipeline: {ratio:.3f}")


if __name__ == "__main__":
    main()
