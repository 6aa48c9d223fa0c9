"""Unlabeled-text benchmark (issue 33): every method with and without the pool, paired.

Fixed protocol: banking77 and clinc150, their fixed 5- and 10-shot files, scored on the whole
test file; the pool is the dataset's train texts outside the support (labels never read),
1,000 / 5,000 / all of them (a seeded uniform sample). Episodic protocol: 5-way 1- and
5-shot episodes of banking77, clinc150 and reuters (test split), a pool of 100 texts per
episode drawn from the split's other texts, 30 % of them from classes outside the episode.

Rows: `maml` (a run meta-trained without banking77, clinc150 and reuters), `maml-base` (the
same adaptation of the encoder before meta-training), `logreg` (scikit-learn on the frozen
mean-pooled MiniLM) and each `+pool` (the same, self-trained on the pool under the k-fold
rule that `adapt` uses). Also the seconds of `adapt` against `adapt_with_unlabeled` for
banking77's 77 x 5 file with a 5,000-text pool. Resumable: rows go to OUTPUT_DIR/unlabeled.jsonl.

    python scripts/bench/unlabeled.py --data_dir ../shared/data \\
        --model runs/meta_value/names-lora --benchmarks_file BENCHMARKS.md
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, bench_parser, mean_pooling_base, publish  # noqa: E402

METHODS = ("maml", "maml-base", "logreg")
POOL_SIZES = (1000, 5000, None)  # None: all the train texts outside the support
FIXED = (("banking77", 5), ("banking77", 10), ("clinc150", 5), ("clinc150", 10))
EPISODIC = ("banking77", "clinc150", "reuters")
EPISODES, EPISODE_POOL, DISTRACTORS = 100, 100, 0.3
START, END = "<!-- unlabeled:start -->", "<!-- unlabeled:end -->"


def runners(model: str, output_dir: Path):
    """The meta-trained run and the packaged MiniLM (mean pooling) the baselines read."""
    from fewshot_nlp.evaluation import MethodRunner
    from fewshot_nlp.meta.model import FewShotModel

    main = MethodRunner(model, cache_features=True)
    base = FewShotModel.from_pretrained(mean_pooling_base(output_dir), cache_features=True)
    return main, main.with_model(base)


def fixed_rows(args, results: Results, main, base) -> None:
    from fewshot_nlp import TaskSource
    from fewshot_nlp.evaluation import evaluate_fixed
    from fewshot_nlp.unlabeled import UnlabeledArguments, read_pool
    from fewshot_nlp.unlabeled.evaluation import TaskPools

    for dataset, shots in FIXED:
        root = Path(args.data_dir) / dataset
        train = TaskSource.from_files([root / "fewshot" / f"train_{shots}.jsonl"], name=dataset)
        test = TaskSource.from_files([root / "test.jsonl"], name=dataset)
        key = f"fixed/{dataset}/{shots}/none"
        if key not in results:
            rows = evaluate_fixed(main, train, test, methods=METHODS, baseline_model=base)
            results.add(key, rows=rows, summary=summary(rows))
        texts = [json.loads(line)["text"] for line in (root / "train.jsonl").open()]
        for size in POOL_SIZES:
            key = f"fixed/{dataset}/{shots}/{size or 'all'}"
            if key in results:
                continue
            options = UnlabeledArguments(max_unlabeled=size or len(texts))
            pool = read_pool(
                texts, labelled=train.texts, max_unlabeled=options.max_unlabeled, warn=False
            )
            for runner in (main, base):
                runner.unlabeled_pool = TaskPools(options, texts=pool.texts)
            methods = [f"{m}+pool" for m in METHODS]
            rows = evaluate_fixed(main, train, test, methods=methods, baseline_model=base)
            results.add(key, rows=rows, pool=len(pool), summary=summary(rows))


def episodic_rows(args, results: Results, main, base) -> None:
    from fewshot_nlp import TaskSource
    from fewshot_nlp.evaluation import evaluate_episodes
    from fewshot_nlp.unlabeled import UnlabeledArguments
    from fewshot_nlp.unlabeled.evaluation import TaskPools

    for dataset in EPISODIC:
        key = f"episodic/{dataset}"
        if key in results:
            continue
        source = TaskSource.from_data_dir(dataset, args.data_dir, split="test")
        pools = TaskPools(
            UnlabeledArguments(),
            source=source,
            size=EPISODE_POOL,
            distractor_share=DISTRACTORS,
        )
        for runner in (main, base):
            runner.unlabeled_pool = pools
        methods = [m for pair in zip(METHODS, [f"{m}+pool" for m in METHODS]) for m in pair]
        rows = evaluate_episodes(
            main,
            [source],
            n_way=5,
            k_shots=(1, 5),
            episodes=EPISODES,
            methods=methods,
            baseline_model=base,
        )
        results.add(key, rows=rows, summary=summary(rows))


def rule_rows(args, results: Results, main, base) -> None:
    """What the k-fold rule costs or saves: maml+pool on the same episodes with the pool
    always used."""
    from fewshot_nlp import TaskSource
    from fewshot_nlp.evaluation import evaluate_episodes
    from fewshot_nlp.unlabeled import UnlabeledArguments
    from fewshot_nlp.unlabeled.evaluation import TaskPools

    for dataset in EPISODIC:
        key = f"episodic-always/{dataset}"
        if key in results:
            continue
        source = TaskSource.from_data_dir(dataset, args.data_dir, split="test")
        main.unlabeled_pool = TaskPools(
            UnlabeledArguments(pool_rule="always"),
            source=source,
            size=EPISODE_POOL,
            distractor_share=DISTRACTORS,
        )
        rows = evaluate_episodes(
            main, [source], n_way=5, k_shots=(1, 5), episodes=EPISODES, methods=["maml+pool"]
        )
        results.add(key, rows=rows, summary=summary(rows))


def timing_row(args, results: Results) -> None:
    """Seconds of one adaptation, 77 classes x 5 shots, without and with 5,000 texts."""
    key = "seconds/banking77/5/5000"
    if key in results:
        return
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.unlabeled import adapt_with_unlabeled

    root = Path(args.data_dir) / "banking77"
    train = root / "fewshot" / "train_5.jsonl"
    texts = [json.loads(line)["text"] for line in (root / "train.jsonl").open()][::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        adapt(args.model, train)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        adapted = adapt_with_unlabeled(args.model, train, texts[:5000], progress=False)
        pooled = time.perf_counter() - start
    record = adapted.config.fewshot_nlp_adaptation["unlabeled"]
    results.add(
        key,
        adapt_seconds=plain,
        with_pool_seconds=pooled,
        record=record,
        summary=f"adapt {plain:.1f} s, with the pool {pooled:.1f} s",
    )


def summary(rows) -> dict:
    out = {}
    for row in rows:
        for shots, value in row["results"].items():
            out[f"{row['method']}/{shots}"] = round(100 * value["accuracy"]["mean"], 2)
    return out


def table(results: Results) -> str:
    lines = [
        START,
        "| protocol | dataset | shots | pool | method | without pool | with pool | gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, shots in FIXED:
        plain = results.rows.get(f"fixed/{dataset}/{shots}/none")
        if plain is None:
            continue
        for size in POOL_SIZES:
            row = results.rows.get(f"fixed/{dataset}/{shots}/{size or 'all'}")
            if row is None:
                continue
            for m in METHODS:
                a = plain["summary"][f"{m}/{shots}"]
                b = row["summary"][f"{m}+pool/{shots}"]
                pool = row["pool"]
                lines.append(
                    f"| fixed | {dataset} | {shots} | {pool} | {m} | {a:.2f} | {b:.2f} | "
                    f"{b - a:+.2f} |"
                )
    for dataset in EPISODIC:
        row = results.rows.get(f"episodic/{dataset}")
        if row is None:
            continue
        for shots in ("1", "5"):
            for m in METHODS:
                a = row["summary"][f"{m}/{shots}"]
                b = row["summary"][f"{m}+pool/{shots}"]
                lines.append(
                    f"| 5-way episodes ({EPISODES}) | {dataset} | {shots} | {EPISODE_POOL} "
                    f"({int(100 * DISTRACTORS)} % other classes) | {m} | {a:.2f} | {b:.2f} | "
                    f"{b - a:+.2f} |"
                )
    always = [(d, results.rows.get(f"episodic-always/{d}")) for d in EPISODIC]
    if any(row for _, row in always):
        lines += [
            "",
            "The k-fold rule against using the pool always (maml+pool, the same episodes):",
            "",
            "| dataset | shots | maml | rule kfold | rule always |",
            "|---|---|---|---|---|",
        ]
        for dataset, row in always:
            if row is None:
                continue
            paired = results.rows[f"episodic/{dataset}"]["summary"]
            for shots in ("1", "5"):
                cells = [paired[f"maml/{shots}"], paired[f"maml+pool/{shots}"]]
                cells.append(row["summary"][f"maml+pool/{shots}"])
                lines.append(
                    f"| {dataset} | {shots} | " + " | ".join(f"{c:.2f}" for c in cells) + " |"
                )
    timing = results.rows.get("seconds/banking77/5/5000")
    lines.append("")
    if timing:
        lines.append(
            f"`adapt` on banking77's 77 x 5 file: {timing['adapt_seconds']:.1f} s; with a "
            f"5,000-text pool (`adapt_with_unlabeled`, k-fold rule included): "
            f"{timing['with_pool_seconds']:.1f} s, 2 CPU cores."
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", required=True, help="A run meta-trained without the targets.")
    parser.add_argument("--output_dir", default="runs/unlabeled")
    parser.add_argument("--benchmarks_file", default=None)
    parser.add_argument(
        "--only", choices=("fixed", "episodic", "timing"), default=None, help="One part."
    )
    args = parser.parse_args()
    results = Results(Path(args.output_dir) / "unlabeled.jsonl")
    main_runner, base = runners(args.model, Path(args.output_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.only in (None, "timing"):
            timing_row(args, results)
        if args.only in (None, "episodic"):
            episodic_rows(args, results, main_runner, base)
            rule_rows(args, results, main_runner, base)
        if args.only in (None, "fixed"):
            fixed_rows(args, results, main_runner, base)
    publish(table(results), args.benchmarks_file, START, END)


if __name__ == "__main__":
    main()
