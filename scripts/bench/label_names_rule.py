"""Which label-name rule a plain checkpoint should adapt with (issue 29, item 9).

A checkpoint that was never meta-trained adapts with a logistic-regression head on its
support features; ``label_names`` decides whether each label's name joins the support as
one more example: 'always', 'never', or 'auto' (only when the names alone classify the
support above chance). This bench runs the three rules on the same episodes (paired, same
seed) at 1 and 5 shots, and the 0-shot row (names are all there is), on held-out data only:
the *train* files of reuters, agnews, tweet_eval and the meta-validation classes of the
intent sets. No test file is read. Rows are appended to ``--output`` as they finish, so an
interrupted run resumes where it stopped.

    python scripts/bench/label_names_rule.py --data_dir ../shared/data \\
        --output runs/label_names_rule.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Results, bench_parser, publish  # noqa: E402

START, END = "<!-- label-names:start -->", "<!-- label-names:end -->"

RULES = ("auto", "always", "never")
# (name in the table, dataset, split, fold, part): held-out data, never a test file.
TARGETS = (
    ("reuters", "reuters", "train", None, None),
    ("agnews", "agnews", "train", None, None),
    ("tweet_eval_emotion", "tweet_eval_emotion", "train", None, None),
    ("tweet_eval_stance", "tweet_eval_stance", "train", None, None),
    ("tweet_eval_emoji", "tweet_eval_emoji", "train", None, None),
    ("banking77 val", "banking77", "train", "01", "validation"),
    ("clinc150 val", "clinc150", "train", "01", "validation"),
)
POOLINGS = ("model", "mean")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--output", default="runs/label_names_rule.jsonl")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--k_shot", type=int, nargs="+", default=[0, 1, 5])
    parser.add_argument("--pooling", nargs="+", default=list(POOLINGS), choices=POOLINGS)
    parser.add_argument("--targets", nargs="+", default=None, help="Row names to run.")
    parser.add_argument("--benchmarks_file", default=None, help="Write the table there too.")
    args = parser.parse_args()

    from fewshot_nlp.data.sources import TaskSource
    from fewshot_nlp.evaluation import evaluate_episodes
    from fewshot_nlp.meta.config import plain_checkpoint_config
    from fewshot_nlp.meta.maml import MAML
    from fewshot_nlp.meta.model import FewShotModel
    from fewshot_nlp.modeling.pretrained import load_classifier

    results = Results(Path(args.output))
    for pooling in args.pooling:
        model, tokenizer = load_classifier("minilm", pooling=pooling)
        base = FewShotModel(
            MAML(model.eval(), plain_checkpoint_config(model)), tokenizer, cache_features=True
        )
        for name, dataset, split, fold, part in TARGETS:
            if args.targets and name not in args.targets:
                continue
            source = TaskSource.from_data_dir(
                dataset, args.data_dir, split=split, fold=fold, part=part
            )
            n_way = min(5, len(source.label_index))
            for rule in RULES:
                shots = [
                    k
                    for k in args.k_shot
                    if f"{pooling}/{name}/{rule}/{k}" not in results and (k > 0 or rule == "always")
                ]
                if not shots:
                    continue
                measured = evaluate_episodes(
                    base.with_config(label_names=rule),
                    [source],
                    n_way=n_way,
                    k_shots=shots,
                    q_query=15,
                    episodes=args.episodes,
                    seed=0,
                    methods=["maml"],
                    progress=False,
                )
                for k in shots:
                    stats = measured[0]["results"][str(k)]["accuracy"]
                    results.add(
                        f"{pooling}/{name}/{rule}/{k}",
                        pooling=pooling,
                        target=name,
                        n_way=n_way,
                        rule=rule,
                        k_shot=k,
                        accuracy=stats["mean"],
                        ci95=stats["ci95"],
                        episodes=args.episodes,
                        summary=f"{100 * stats['mean']:.2f}",
                    )
    text = START + "\n" + table(list(results.rows.values())) + "\n" + END
    publish(text, args.benchmarks_file, START, END)


def table(rows: list[dict]) -> str:
    """Accuracy of each rule, paired episodes; 0-shot once (names are all it has)."""
    lines = [
        "Accuracy (%) of the plain MiniLM's adaptation, mean ± 95 % CI over the episodes "
        "(paired: the same episodes for every rule).",
        "",
        "| pooling | target | way | shots | auto | always | never |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["pooling"], r["target"], r["n_way"], r["k_shot"]) for r in rows)
    means: dict[tuple, list[float]] = {}
    for pooling, target, way, k in keys:
        cells = []
        for rule in RULES:
            hit = [
                r
                for r in rows
                if (r["pooling"], r["target"], r["k_shot"], r["rule"]) == (pooling, target, k, rule)
            ]
            if not hit:
                cells.append("" if k == 0 else "?")
                continue
            cells.append(f"{100 * hit[0]['accuracy']:.2f} ± {100 * hit[0]['ci95']:.2f}")
            means.setdefault((pooling, k, rule), []).append(hit[0]["accuracy"])
        lines.append(f"| {pooling} | {target} | {way} | {k} | " + " | ".join(cells) + " |")
    lines.append("")
    for (pooling, k, rule), values in sorted(means.items()):
        if k:
            lines.append(
                f"- mean {pooling} {k}-shot {rule}: {100 * sum(values) / len(values):.2f} "
                f"over {len(values)} targets"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
