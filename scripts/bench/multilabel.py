"""Multi-label benchmark (issue 31): MixSNIPS, support sets of K = 1, 5, 10 positives per label
drawn greedily from its pool (train.jsonl), 5 seeds, the same sets for every method, scored
on the whole test file (micro-F1, macro-F1, exact match).

Rows: `maml` (our multi-label adaptation of a meta-trained run that never saw snips, from
which MixSNIPS is built), `maml-base` (the same adaptation of the encoder before
meta-training: the meta-value), `logreg` (scikit-learn one-vs-rest logistic regression on the
frozen mean-pooled MiniLM, C = 10, balanced classes, threshold 0.5: the plain baseline) and
`logreg-names` (the same with each label's name as one more positive).

Also, on the pool alone (support drawn from it, scored on the rest of it; never the test
file): the threshold rule, `fit` (0.5 of the class-balanced fit) against `kfold` (moved by
k-fold over the shots); and the seconds of `adapt_multilabel` for 7 labels x 5 shots.
Resumable: each row is appended to OUTPUT_DIR/multilabel.jsonl.

    python scripts/bench/multilabel.py --data_dir ../shared/data \\
        --model runs/meta_value/names-lora-nosnips --benchmarks_file BENCHMARKS.md
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, bench_parser, publish  # noqa: E402

SHOTS, SEEDS = (1, 5, 10), 5
METHODS = ("maml", "maml-base", "logreg", "logreg-names")
START, END = "<!-- multilabel:start -->", "<!-- multilabel:end -->"


def test_rows(args, results: Results) -> None:
    from fewshot_nlp import FewShotModel
    from fewshot_nlp.multilabel import evaluate_multilabel, read_multilabel

    root = Path(args.data_dir) / "mixsnips"
    pool = read_multilabel([root / "train.jsonl"])
    test = read_multilabel([root / "test.jsonl"])
    run = FewShotModel.from_pretrained(args.model, cache_features=True)
    for k in SHOTS:
        todo = [m for m in METHODS if f"test/{k}/{m}" not in results]
        if not todo:
            continue
        for row in evaluate_multilabel(
            run, test, pool=pool, k_shots=[k], seeds=SEEDS, methods=todo
        ):
            results.add(f"test/{k}/{row['method']}", **row, summary=summary(row))


def pool_rows(args, results: Results) -> None:
    """The threshold rule, chosen on the pool: support from it, the rest of it scored."""
    from fewshot_nlp import FewShotModel
    from fewshot_nlp.multilabel import MultiLabelArguments, read_multilabel
    from fewshot_nlp.multilabel.adaptation import fit_on_run, read_features
    from fewshot_nlp.multilabel.data import MultiLabelData
    from fewshot_nlp.multilabel.evaluation import greedy_support
    from fewshot_nlp.multilabel.head import multilabel_scores

    pool = read_multilabel([Path(args.data_dir) / "mixsnips" / "train.jsonl"])
    run = FewShotModel.from_pretrained(args.model, cache_features=True)
    run = run.without_meta_training()
    for k in (5, 10):
        for rule in ("fit", "kfold"):
            key = f"pool/{k}/{rule}"
            if key in results:
                continue
            scores = []
            for seed in range(SEEDS):
                support = greedy_support(pool, k, seed)
                chosen = set(support.texts)
                rest = [(t, y) for t, y in zip(pool.texts, pool.labels) if t not in chosen]
                rest = MultiLabelData([t for t, _ in rest], [y for _, y in rest], pool.names)
                fit, _, _ = fit_on_run(run, support, MultiLabelArguments(threshold=rule))
                features = read_features(run, rest.texts, run.maml.mean_pooling)
                predicted = features @ fit.weight.T + fit.bias > 0
                scores.append(multilabel_scores(predicted, rest.matrix().bool()))
            row = {m: statistics.mean(s[m] for s in scores) for m in ("micro_f1", "exact_match")}
            results.add(key, **row, summary=f"micro-F1 {100 * row['micro_f1']:.1f}")


def time_rows(args, results: Results) -> None:
    """Seconds of adapt_multilabel (load the run, read, fit, package) for 7 labels x 5 shots."""
    if "time/7x5" in results:
        return
    import json

    from fewshot_nlp.multilabel import adapt_multilabel

    rows = [json.loads(line) for line in (Path(args.data_dir) / "mixsnips" / "train.jsonl").open()]
    count, support = {}, []
    for row in rows:  # 5 single-label examples per label: 7 labels x 5 shots
        if len(row["labels"]) == 1 and count.get(row["labels"][0], 0) < 5:
            count[row["labels"][0]] = count.get(row["labels"][0], 0) + 1
            support.append((row["text"], row["labels"]))
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        adapt_multilabel(args.model, support)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    results.add("time/7x5", seconds=median, runs=seconds, summary=f"{median:.2f} s")


def summary(row: dict) -> str:
    return " / ".join(
        f"{100 * row[k]['mean']:.1f} ± {100 * (row[k]['ci95'] or 0):.1f}"
        for k in ("micro_f1", "macro_f1", "exact_match")
    )


def report(results: Results, model: str) -> str:
    lines = [
        START,
        f"Model: `{model}` (never saw snips). MixSNIPS test: 2,199 texts, 7 labels; support "
        f"sets drawn greedily from the pool, {SEEDS} seeds, the same sets for every method; "
        "mean ± 95 % CI over the seeds.",
        "",
        "| K | method | micro-F1 | macro-F1 | exact match |",
        "|---|---|---|---|---|",
    ]
    for k in SHOTS:
        for method in METHODS:
            row = results.rows.get(f"test/{k}/{method}")
            if row:
                cells = row["summary"].replace(" / ", " | ")
                lines.append(f"| {k} | {method} | {cells} |")
    pool = [(k, r) for k in (5, 10) for r in ("fit", "kfold") if f"pool/{k}/{r}" in results]
    if pool:
        lines += ["", "Threshold rule, chosen on the pool (its rest scored; maml-base):", ""]
        lines += ["| K | rule | micro-F1 | exact match |", "|---|---|---|---|"]
        for k, rule in pool:
            row = results.rows[f"pool/{k}/{rule}"]
            lines.append(
                f"| {k} | {rule} | {100 * row['micro_f1']:.1f} | {100 * row['exact_match']:.1f} |"
            )
    if "time/7x5" in results:
        row = results.rows["time/7x5"]
        lines += [
            "",
            f"`adapt_multilabel` for 7 labels x 5 shots: {row['seconds']:.2f} s (median of 3, "
            "in process: load the run, read the texts and names, fit, package; 2 CPU cores).",
        ]
    return "\n".join([*lines, END])


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", default="runs/meta_value/names-lora-nosnips")
    parser.add_argument("--output_dir", default="runs/multilabel", help="Results go here.")
    parser.add_argument("--benchmarks_file", default=None, help="Write the table there too.")
    args = parser.parse_args()
    results = Results(Path(args.output_dir) / "multilabel.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        time_rows(args, results)
        pool_rows(args, results)
        test_rows(args, results)
    publish(report(results, args.model), args.benchmarks_file, START, END)


if __name__ == "__main__":
    main()
