"""How the k-fold rule of `adapt --unlabeled_file` was chosen (issue 33), on held-out
datasets only (none of the unlabeled bench's targets: banking77, clinc150, reuters).

Per dataset, 40 episodes at 1 and 5 shots of 5 classes (fewer when it has fewer), 15
queries per class, a pool of 14 other texts per class plus 30 texts of other classes; the
head is the adaptation's (logistic regression on the support and the label names), with
and without self-training on the pool. Each candidate rule decides from the k-fold figures
over the labelled examples alone; the table is its mean gain over never using the pool.
Resumable: OUTPUT_DIR/unlabeled_rule.jsonl.

    python scripts/bench/unlabeled_rule.py --data_dir ../shared/data \\
        --model runs/meta_value/names-lora
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Results, bench_parser  # noqa: E402

DATASETS = ("agnews", "emotion", "sst5", "snips", "trec", "tweet_eval_emotion", "atis", "sgd")
EPISODES, QUERIES, POOL_PER_CLASS, OTHERS = 40, 15, 14, 30

RULES = {
    "never": lambda r: False,
    "always": lambda r: True,
    "with >= without": lambda r: r["a1"] >= r["a0"],
    "with > without": lambda r: r["a1"] > r["a0"],
    "loss with <= without": lambda r: r["l1"] <= r["l0"],
    "with >= without, without >= 0.6": lambda r: r["a1"] >= r["a0"] >= 0.6 * r["held"],
    "with >= without, without >= 0.7": lambda r: r["a1"] >= r["a0"] >= 0.7 * r["held"],
    "with >= without, without >= 0.75": lambda r: r["a1"] >= r["a0"] >= 0.75 * r["held"],
    "with >= without, without >= 0.8": lambda r: r["a1"] >= r["a0"] >= 0.8 * r["held"],
}


def episode_row(run, fit, rng, byc, classes, shots, options) -> dict:
    import torch
    import torch.nn.functional as F

    from fewshot_nlp.data.labels import label_name_text
    from fewshot_nlp.unlabeled.self_training import self_train, spread_folds

    n = min(5, len(classes))
    chosen = rng.sample(classes, n)
    support, labels, queries, truth, pool = [], [], [], [], []
    for i, c in enumerate(chosen):
        texts = rng.sample(byc[c], shots + QUERIES + POOL_PER_CLASS)
        support += texts[:shots]
        labels += [i] * shots
        queries += texts[shots : shots + QUERIES]
        truth += [i] * QUERIES
        pool += texts[shots + QUERIES :]
    others = [c for c in classes if c not in chosen]
    pool += [rng.choice(byc[rng.choice(others)]) for _ in range(OTHERS if others else 0)]
    feats = lambda texts: run.features(texts).float()  # noqa: E731
    names = feats([label_name_text(c) for c in chosen])
    x = torch.cat([feats(support), names])
    y = torch.cat([torch.tensor(labels), torch.arange(n)])
    w = torch.cat([torch.ones(len(labels)), torch.full((n,), run.config.label_name_weight)])
    query, target, pool_x = feats(queries), torch.tensor(truth), feats(pool)
    plain = (fit(x, y, w)(query).argmax(-1) == target).float().mean().item()
    trained, _ = self_train(fit, x, y, w, pool_x, n, options)
    pooled = (trained(query).argmax(-1) == target).float().mean().item()
    real = torch.arange(len(labels))
    folds = min(options.pool_folds, len(real))
    fold_of = spread_folds(y[real], n, folds)
    figures = {"a0": 0, "a1": 0, "l0": 0.0, "l1": 0.0}
    for k in range(folds):
        held = real[fold_of == k]
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        without = fit(x[keep], y[keep], w[keep])
        with_pool, _ = self_train(fit, x[keep], y[keep], w[keep], pool_x, n, options)
        for tag, scorer in (("0", without), ("1", with_pool)):
            logits = scorer(x[held]).float()
            figures["a" + tag] += int((logits.argmax(-1) == y[held]).sum())
            figures["l" + tag] += float(F.cross_entropy(logits, y[held], reduction="sum"))
    return {"plain": plain, "pooled": pooled, "held": len(real), **figures}


def table(results: Results) -> str:
    groups: dict[str, list[dict]] = {}
    for row in results.rows.values():
        groups.setdefault(f"{row['dataset']}-{row['shots']}", []).append(row)
    means = {name: [] for name in RULES}
    for rows in groups.values():
        base = sum(r["plain"] for r in rows) / len(rows)
        for name, rule in RULES.items():
            gain = sum(r["pooled"] if rule(r) else r["plain"] for r in rows) / len(rows) - base
            means[name].append(100 * gain)
    lines = ["| rule | mean gain | worst dataset x shots |", "|---|---|---|"]
    for name, gains in means.items():
        lines.append(f"| {name} | {sum(gains) / len(gains):+.2f} | {min(gains):+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output_dir", default="runs/unlabeled")
    args = parser.parse_args()
    from fewshot_nlp.meta.model import FewShotModel
    from fewshot_nlp.modeling.head import EpisodeHead
    from fewshot_nlp.unlabeled import UnlabeledArguments
    from fewshot_nlp.unlabeled.adaptation import head_fit

    results = Results(Path(args.output_dir) / "unlabeled_rule.jsonl")
    run = FewShotModel.from_pretrained(args.model, cache_features=True)
    options = UnlabeledArguments()
    for dataset in DATASETS:
        rows = [json.loads(line) for line in (Path(args.data_dir) / dataset / "train.jsonl").open()]
        rng = random.Random(0)
        rng.shuffle(rows)
        byc: dict[str, list[str]] = {}
        for row in rows:
            byc.setdefault(row["label"], []).append(row["text"])
        classes = [c for c, texts in byc.items() if len(texts) >= 60]
        fit = head_fit(EpisodeHead("logreg"), min(5, len(classes)))
        for shots in (1, 5):
            for episode in range(EPISODES):  # drawn in order, so a rerun draws the same
                row = episode_row(run, fit, rng, byc, classes, shots, options)
                key = f"{dataset}/{shots}/{episode}"
                if key not in results:
                    results.add(key, dataset=dataset, shots=shots, **row)
    print(table(results))


if __name__ == "__main__":
    main()
