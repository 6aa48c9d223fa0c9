"""Adaptation routes on frozen base-MiniLM features, measured on data no target is tested on.

Tasks: the fold-01 *validation* classes of banking77 and clinc150 (drawn from train.jsonl,
never their test files) and whole non-target datasets (snips, emotion, agnews, trec,
tweet_eval_emotion). All classes of a task at once, k support examples per class, 20
queries per class, 3 draws (seeds 0-2). Features: mean-pooled, L2-normalised MiniLM
embeddings. Routes (all scikit-learn logistic regression unless said otherwise):

- logreg: C=10 with intercept (the baseline); logreg-noint: no intercept (what we export);
- prototype: cosine nearest class mean;
- logreg-cv-C: C chosen among 1-100 by 3-fold cross-validation on the support set;
- dropout-aug: 4 extra dropout-noised encodings of each support example;
- ridge: our closed-form ridge head (fewshot_nlp.modeling.head, regularization 10);
- ours-logreg: our L-BFGS logistic regression head (no intercept, C=10);
- names-wN: each label's name as one more example of its class, weight N (scikit-learn,
  no intercept).

    python scripts/bench/adaptation_routes.py --data_dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import random
import warnings

import numpy as np
import torch
import torch.nn.functional as F

TASKS = [
    ("banking77", "validation"),
    ("clinc150", "validation"),
    ("snips", None),
    ("emotion", None),
    ("agnews", None),
    ("trec", None),
    ("tweet_eval_emotion", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="The shared data directory.")
    parser.add_argument("--shots", default="1,5,10", help="Comma-separated k.")
    parser.add_argument("--seeds", type=int, default=3, help="Draws per task and k.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel, AutoTokenizer

    from fewshot_nlp.data.labels import label_name_text
    from fewshot_nlp.modeling.head import init_head
    from fewshot_nlp.modeling.pretrained import resolve_model_path

    path = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).eval()

    def embed(texts, noisy=False):
        encoder.train(noisy)
        out = []
        for i in range(0, len(texts), 128):
            batch = tokenizer(
                texts[i : i + 128],
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        encoder.eval()
        return torch.cat(out).numpy()

    def logreg(x, y, c=10.0, intercept=True, weights=None):
        model = LogisticRegression(C=c, max_iter=2000, fit_intercept=intercept)
        return model.fit(x, y, sample_weight=weights)

    def cv_c(x, y, grid=(1, 3, 10, 30, 100)):
        counts = np.bincount(y)
        folds = min(3, counts.min())
        if folds < 2:
            return 10.0
        fold = np.zeros(len(y), int)
        for c in range(len(counts)):
            idx = np.where(y == c)[0]
            fold[idx] = np.arange(len(idx)) % folds
        score = {
            c: sum(
                (logreg(x[fold != f], y[fold != f], c).predict(x[fold == f]) == y[fold == f]).sum()
                for f in range(folds)
            )
            for c in grid
        }
        return max(grid, key=lambda c: (score[c], -abs(np.log(c / 10))))

    for name, part in TASKS:
        by_label: dict[str, list[str]] = {}
        with open(f"{args.data_dir}/{name}/train.jsonl", encoding="utf-8") as file:
            for line in file:
                row = json.loads(line)
                by_label.setdefault(row["label"], []).append(row["text"])
        classes = sorted(by_label)
        if part:
            with open(f"{args.data_dir}/{name}/splits.json", encoding="utf-8") as file:
                classes = sorted(json.load(file)["folds"]["01"][part])
        for k in [int(s) for s in args.shots.split(",")]:
            scores: dict[str, list[float]] = {}
            for seed in range(args.seeds):
                rng = random.Random(seed)
                support, query = [], []
                for label, c in enumerate(classes):
                    texts = list(by_label[c])
                    rng.shuffle(texts)
                    support += [(t, label) for t in texts[:k]]
                    query += [(t, label) for t in texts[k : k + 20]]
                xs, ys = embed([t for t, _ in support]), np.array([y for _, y in support])
                xq, yq = embed([t for t, _ in query]), np.array([y for _, y in query])
                xn, yn = embed([label_name_text(c) for c in classes]), np.arange(len(classes))

                def record(route, predicted, scores=scores, yq=yq):
                    scores.setdefault(route, []).append(float((predicted == yq).mean()))

                record("logreg", logreg(xs, ys).predict(xq))
                record("logreg-noint", logreg(xs, ys, intercept=False).predict(xq))
                protos = np.stack([xs[ys == c].mean(0) for c in range(len(classes))])
                protos /= np.linalg.norm(protos, axis=1, keepdims=True)
                record("prototype", (xq @ protos.T).argmax(1))
                record("logreg-cv-C", logreg(xs, ys, cv_c(xs, ys)).predict(xq))
                for route, method in (("ridge", "ridge"), ("ours-logreg", "logreg")):
                    weight, _ = init_head(
                        torch.from_numpy(xs), torch.from_numpy(ys), len(classes), method
                    )
                    record(route, (xq @ weight.numpy().T).argmax(1))
                noisy = np.vstack([xs] + [embed([t for t, _ in support], True) for _ in range(4)])
                record("dropout-aug", logreg(noisy, np.tile(ys, 5)).predict(xq))
                for w in sorted({1, 2, k}):
                    x, y = np.vstack([xs, xn]), np.concatenate([ys, yn])
                    weights = np.r_[np.ones(len(ys)), np.full(len(yn), float(w))]
                    model = logreg(x, y, intercept=False, weights=weights)
                    record(f"names-w{w}", model.predict(xq))
            summary = {route: round(100 * float(np.mean(v)), 2) for route, v in scores.items()}
            print(f"{name} {len(classes)}-way {k}-shot: {summary}", flush=True)


if __name__ == "__main__":
    main()
