"""Accuracy benchmark: leave-one-dataset-out meta-training, then paired evaluation.

For each target (banking77, clinc150: intents; reuters: news topics) the packaged MiniLM,
with its head on the mean of the last hidden states (``pooling="mean"``), is meta-trained
on every *other* shared dataset (never on the target), with the best step (0 included)
chosen on another dataset's meta-validation classes (never on the target), then:
- episodic: 5-way 1-shot and 5-shot on the target's held-out classes (fold 01 test part
  for the intent sets; reuters' test classes), the same episodes for every method;
- fixed-shot: all classes, banking77/clinc150 `fewshot/train_{5,10}.jsonl` -> `test.jsonl`
  (reuters: a seeded 5/10-shot draw from its test classes, the rest scored).
Methods (all paired):
- maml: the meta-model's adaptation (convex head on its features; label names when they
  classify the support above chance); maml-nonames: the same without label names;
- maml-base: the same adaptation on the mean-pooling MiniLM, not meta-trained (a logistic
  regression head on its features plus label names, no inner step);
- logreg / prototype / finetune: the base MiniLM (frozen mean-pooled L2-normalised
  embeddings + scikit-learn logistic regression C=10; cosine prototypes; Trainer-style
  fine-tuning with a new head, on the first `finetune_episodes` episodes only).

Resumable: every result is appended to OUTPUT_DIR/results.jsonl as soon as it exists and is
skipped when the script runs again; meta-models are kept in OUTPUT_DIR.

    python scripts/bench/accuracy.py --data_dir ../shared/data            # CPU, < 90 min
    python scripts/bench/accuracy.py --data_dir ../shared/data --setting smoke
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

TARGETS = ("banking77", "clinc150", "reuters")
# Model selection for each target: meta-validation classes of another dataset (its fold-01
# validation part, kept out of meta-training).
VALIDATION = {
    "banking77": "clinc150",
    "clinc150": "banking77",
    "reuters": "clinc150",
}
PUBLISHED = {  # jianguoz/Few-Shot-Intent-Detection leaderboard, RoBERTa-base-sized models
    ("banking77", 5): {"RoBERTa+Classifier": 74.04, "DNNC": 80.40, "CPFT": 80.86, "ICDA": 84.01},
    ("clinc150", 5): {"RoBERTa+Classifier": 87.99, "DNNC": 91.02, "CPFT": 92.34, "ICDA": 92.62},
    ("banking77", 10): {"RoBERTa+Classifier": 84.27, "DNNC": 86.71, "CPFT": 87.20, "ICDA": 89.79},
    ("clinc150", 10): {"RoBERTa+Classifier": 91.55, "DNNC": 93.76, "CPFT": 94.18, "ICDA": 94.84},
}
SETTINGS = {
    "cpu": dict(
        max_steps=150,
        eval_steps=50,
        eval_episodes=40,
        episodes=300,
        finetune_episodes=30,
        q_query=10,
        max_length=64,
    ),
    "smoke": dict(
        max_steps=2,
        eval_steps=1,
        eval_episodes=2,
        episodes=3,
        finetune_episodes=1,
        q_query=4,
        max_length=32,
    ),
}
START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"


class Results:
    """results.jsonl: one line per measured row, read back so a rerun skips it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, key: str, **row) -> None:
        row["key"] = key
        self.rows[key] = row
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")
        print(f"[result] {key}: {json.dumps(row.get('summary', ''))}", flush=True)


def dataset_names(data_dir: str) -> list[str]:
    return sorted(p.name for p in Path(data_dir).iterdir() if (p / "train.jsonl").is_file())


def mean_pooling_base(out: Path) -> Path:
    """The packaged MiniLM in the mean-pooling class, saved once: the not-meta-trained row."""
    folder = out / "base-mean"
    if (folder / "config.json").is_file():
        return folder
    from fewshot_nlp.modeling.pretrained import load_classifier

    model, tokenizer = load_classifier("minilm", "eager", pooling="mean")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def meta_train(target: str, data_dir: str, setting: dict, out: Path, results):
    folder = out / f"meta-{target}"
    if f"{target}/meta" in results and (folder / "fewshot_nlp.json").is_file():
        return folder
    from fewshot_nlp import TaskSource
    from fewshot_nlp.meta.arguments import MetaTrainingArguments
    from fewshot_nlp.meta.trainer import MetaTrainer
    from fewshot_nlp.modeling.pretrained import load_classifier

    validation = VALIDATION[target]
    specs = [
        f"{n}:train:01:train" if n == validation else n
        for n in dataset_names(data_dir)
        if n != target
    ]
    model, tokenizer = load_classifier("minilm", "eager", pooling="mean")
    args = MetaTrainingArguments(
        output_dir=str(folder),
        overwrite_output_dir=True,
        max_steps=setting["max_steps"],
        learning_rate=1e-4,
        meta_batch_size=2,
        n_way="5-10",
        k_shot=3,
        q_query=4,
        inner_steps=1,
        inner_learning_rate=0.05,
        adapt_scope="lora",
        head_init="cosine",
        adapt_head_init="logreg",
        label_names="auto",
        max_length=setting["max_length"],
        temperature=0.5,
        seed=0,
        logging_steps=25,
        eval_steps=setting["eval_steps"],
        eval_episodes=setting["eval_episodes"],
        load_best_model_at_end=True,
        save_total_limit=1,
        merge_lora_on_save=True,
    )
    sources = [TaskSource.from_spec(s, data_dir) for s in specs]
    evals = [TaskSource.from_spec(f"{validation}:train:01:validation", data_dir)]
    start = time.perf_counter()
    trainer = MetaTrainer(model, args, sources, evals, tokenizer=tokenizer)
    state = trainer.train()
    seconds = time.perf_counter() - start
    curve = [(h["step"], h["eval_accuracy"]) for h in state.log_history if "eval_accuracy" in h]
    best = state.best_model_checkpoint
    results.add(
        f"{target}/meta",
        seconds=seconds,
        steps=state.global_step,
        sources=specs,
        validation=f"{validation}:train:01:validation",
        curve=curve,
        best_checkpoint=Path(best).name if best else None,
        summary=f"{seconds / 60:.1f} min, curve {curve}, best {best and Path(best).name}",
    )
    return folder


def held_out(target: str, data_dir: str):
    from fewshot_nlp import TaskSource

    if target == "reuters":  # a class-split dataset: test.jsonl holds the test classes
        return TaskSource.from_data_dir(target, data_dir, split="test")
    return TaskSource.from_data_dir(target, data_dir, split="test", fold="01", part="test")


def fixed_split(target: str, shots: int, data_dir: str):
    from fewshot_nlp import TaskSource

    if target != "reuters":
        train = TaskSource.from_files(
            f"{data_dir}/{target}/fewshot/train_{shots}.jsonl", name=target
        )
        return train, TaskSource.from_data_dir(target, data_dir, split="test")
    source = TaskSource.from_data_dir(target, data_dir, split="test")
    rng = random.Random(0)
    train, test = [], []
    for label, ids in source.label_index.items():
        ids = list(ids)
        rng.shuffle(ids)
        train += [(source.texts[i], label) for i in ids[:shots]]
        test += [(source.texts[i], label) for i in ids[shots:]]
    make = lambda rows: TaskSource(  # noqa: E731
        name=target, texts=[t for t, _ in rows], labels=[y for _, y in rows]
    )
    return make(train), make(test)


def evaluate_target(target, data_dir, setting, models, results) -> None:
    from fewshot_nlp.evaluation import evaluate_episodes, evaluate_fixed

    common = dict(
        n_way=5, q_query=setting["q_query"], episodes=setting["episodes"], seed=0, progress=False
    )
    held = [held_out(target, data_dir)]
    for method, (model, runs_as) in models.items():
        for k in (1, 5):
            key = f"{target}/episodic/{k}/{method}"
            if key in results:
                continue
            caps = {"finetune": setting["finetune_episodes"]}
            entry = evaluate_episodes(
                model, held, k_shots=[k], methods=[runs_as], method_episodes=caps, **common
            )[0]
            acc = entry["results"][str(k)]["accuracy"]
            results.add(
                key,
                entry=entry,
                summary=f"{100 * acc['mean']:.2f} ± {100 * (acc['ci95'] or 0):.2f}",
            )
    for shots in (5, 10):
        train, test = fixed_split(target, shots, data_dir)
        for method, (model, runs_as) in models.items():
            key = f"{target}/fixed/{shots}/{method}"
            if key in results:
                continue
            entry = evaluate_fixed(model, train, test, methods=[runs_as], shots=str(shots))[0]
            r = entry["results"][str(shots)]
            results.add(key, entry=entry, summary=f"{100 * r['accuracy']['mean']:.2f}")


def time_adapt(target: str, data_dir: str, run: Path, results: Results) -> None:
    """Seconds for `adapt` itself (load, adapt, standard head; no test set) on the 5-shot
    file: 77 classes x 5 examples for banking77."""
    key = f"{target}/adapt_seconds"
    if key in results or target == "reuters":
        return
    from fewshot_nlp.adapt import adapt

    train, _ = fixed_split(target, 5, data_dir)
    start = time.perf_counter()
    model = adapt(str(run), list(zip(train.texts, train.labels)))
    seconds = time.perf_counter() - start
    record = model.fewshot_nlp_adaptation
    results.add(
        key,
        seconds=seconds,
        classes=record["classes"],
        examples=record["examples"],
        label_names_used=record["label_names_used"],
        summary=f"{seconds:.1f} s for {record['classes']} classes x 5",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", required=True, help="The shared data directory.")
    parser.add_argument("--setting", choices=list(SETTINGS), default="cpu", help="Size.")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), help="Target datasets.")
    parser.add_argument("--output_dir", default="runs/bench", help="Runs and results go here.")
    parser.add_argument("--benchmarks_file", default="BENCHMARKS.md", help="File to update.")
    parser.add_argument(
        "--report_only", action="store_true", help="Only rewrite the BENCHMARKS.md section."
    )
    args = parser.parse_args()

    from fewshot_nlp.evaluation import MethodRunner
    from fewshot_nlp.modeling.pretrained import resolve_model_path

    setting = SETTINGS[args.setting]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / "results.jsonl")
    if not args.report_only:
        began = time.perf_counter()
        length = setting["max_length"]
        base = MethodRunner(resolve_model_path("minilm"), max_length=length, cache_features=True)
        not_meta_trained = MethodRunner(
            mean_pooling_base(out), max_length=length, cache_features=True
        )
        for target in args.targets:
            run = meta_train(target, args.data_dir, setting, out, results)
            meta = MethodRunner(run, max_length=length, cache_features=True)
            plain = MethodRunner(
                run,
                max_length=length,
                cache_features=True,
                label_names="never",
            )
            models = {
                "maml": (meta, "maml"),
                "maml-nonames": (plain, "maml"),
                "maml-base": (not_meta_trained, "maml"),
                "logreg": (base, "logreg"),
                "prototype": (base, "prototype"),
                "finetune": (base, "finetune"),
            }
            evaluate_target(target, args.data_dir, setting, models, results)
            time_adapt(target, args.data_dir, run, results)
        print(f"benchmark done in {(time.perf_counter() - began) / 60:.1f} min", flush=True)
    write_section(results, args.setting, setting, Path(args.benchmarks_file))


def write_section(results: Results, name: str, setting: dict, path: Path) -> None:
    rows = results.rows
    lines = [
        START,
        "## Accuracy (`scripts/bench/accuracy.py`)",
        "",
        f"Setting `{name}` ({json.dumps(setting)}), 2 CPU cores. Per target, first-order "
        "LoRA-MAML of the mean-pooling MiniLM (cosine head, label names, 1 inner step) on "
        "every other shared dataset, the best step (0 included) chosen on another dataset's "
        "meta-validation classes; adaptation: a logistic-regression head on the support "
        "(label names as examples when they classify it above chance) and the inner step. "
        "Episodic rows: mean ± 95% CI over the same episodes for every method (finetune: "
        "the first episodes only, see the column). Rows marked `carried` come from the "
        "previous run of this script (same episodes and splits, same baseline code).",
        "",
    ]
    for target in TARGETS:
        meta = rows.get(f"{target}/meta")
        if not meta:
            continue
        lines += [
            f"### {target}",
            "",
            f"Meta-trained {meta['steps']} steps in {meta['seconds'] / 60:.1f} min; validation "
            f"on {meta['validation']} (accuracy by step: "
            + ", ".join(f"{s}: {100 * a:.1f}" for s, a in meta["curve"])
            + f"); kept: {meta['best_checkpoint']}.",
            "",
            "| protocol | shots | method | accuracy % | macro-F1 % | episodes | s / adaptation |",
            "|---|---|---|---|---|---|---|",
        ]
        for protocol, shots_list in (("episodic", (1, 5)), ("fixed", (5, 10))):
            for shots in shots_list:
                for key in sorted(k for k in rows if k.startswith(f"{target}/{protocol}/{shots}/")):
                    entry = rows[key]["entry"]
                    r = entry["results"][str(shots)]

                    def cell(m):
                        ci = m["ci95"]
                        return f"{100 * m['mean']:.2f}" + (f" ± {100 * ci:.2f}" if ci else "")

                    label = (
                        "5-way episodes, held-out classes"
                        if protocol == "episodic"
                        else "all classes, fixed split"
                    )
                    method = key.rsplit("/", 1)[1] + " (carried)" * bool(
                        rows[key].get("carried_from")
                    )
                    lines.append(
                        f"| {label} | {shots} | {method} | {cell(r['accuracy'])} "
                        f"| {cell(r['f1_macro'])} | {r['episodes']} | {r['adapt_seconds']:.2f} |"
                    )
        timing = rows.get(f"{target}/adapt_seconds")
        if timing:
            lines += [
                "",
                f"`adapt()` on the fixed 5-shot file ({timing['classes']} classes, "
                f"{timing['examples']} examples; loading, adaptation and the standard head, no "
                f"test set): {timing['seconds']:.1f} s on 2 CPU cores.",
            ]
        for shots in (5, 10):
            published = PUBLISHED.get((target, shots))
            ours = rows.get(f"{target}/fixed/{shots}/maml")
            if not (published and ours):
                continue
            acc = 100 * ours["entry"]["results"][str(shots)]["accuracy"]["mean"]
            best = max(published.values())
            lines += [
                "",
                f"Fixed {shots}-shot, published (RoBERTa-base-sized): "
                + ", ".join(f"{k} {v:.2f}" for k, v in published.items())
                + f". Ours (MiniLM, maml): {acc:.2f}, {best - acc:+.2f} points to the best.",
            ]
        lines.append("")
    lines += targets_table(rows)
    lines.append(END)
    section = "\n".join(lines)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START in text:
        text = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _m: section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def targets_table(rows: dict) -> list[str]:
    """The issue's targets, from the rows: maml against logreg everywhere, and the rest."""

    def acc(target, protocol, shots, method):
        row = rows.get(f"{target}/{protocol}/{shots}/{method}")
        return 100 * row["entry"]["results"][str(shots)]["accuracy"]["mean"] if row else None

    lines = [
        "### Against the targets",
        "",
        "| target | row | maml | logreg | maml - logreg | met? |",
        "|---|---|---|---|---|---|",
    ]
    diffs = []
    for target in TARGETS:
        for protocol, shots_list in (("episodic", (1, 5)), ("fixed", (5, 10))):
            for shots in shots_list:
                ours, theirs = (acc(target, protocol, shots, m) for m in ("maml", "logreg"))
                if ours is None or theirs is None:
                    continue
                diffs.append(ours - theirs)
                lines.append(
                    f"| maml >= logreg | {target} {protocol} {shots}-shot | {ours:.2f} | "
                    f"{theirs:.2f} | {ours - theirs:+.2f} | {'yes' if ours >= theirs else 'no'} |"
                )
    if diffs:
        mean = sum(diffs) / len(diffs)
        lines.append(
            f"| >= +2 points on average | {len(diffs)} rows | | | {mean:+.2f} | "
            f"{'yes' if mean >= 2 else 'no'} |"
        )
    bank = acc("banking77", "fixed", 5, "maml")
    if bank is not None:
        lines.append(
            f"| banking77 fixed 5-shot >= 82 (stretch 84) | | {bank:.2f} | | | "
            f"{'yes' if bank >= 82 else 'no'} |"
        )
    for target in ("banking77", "clinc150"):
        ours, proto = acc(target, "episodic", 1, "maml"), acc(target, "episodic", 1, "prototype")
        if ours is not None and proto is not None:
            lines.append(
                f"| 1-shot >= prototype + 3 | {target} | {ours:.2f} | (prototype {proto:.2f}) | "
                f"{ours - proto:+.2f} | {'yes' if ours >= proto + 3 else 'no'} |"
            )
    for protocol, shots_list in (("episodic", (1, 5)), ("fixed", (5, 10))):
        for shots in shots_list:
            ours = acc("reuters", protocol, shots, "maml")
            proto = acc("reuters", protocol, shots, "prototype")
            if ours is not None and proto is not None:
                lines.append(
                    f"| never below the base prototype | reuters {protocol} {shots}-shot | "
                    f"{ours:.2f} | (prototype {proto:.2f}) | {ours - proto:+.2f} | "
                    f"{'yes' if ours >= proto else 'no'} |"
                )
    timing = rows.get("banking77/adapt_seconds")
    if timing:
        lines.append(
            f"| 77 classes x 5 shots adapted in <= 60 s | banking77 | {timing['seconds']:.1f} s "
            f"| | | {'yes' if timing['seconds'] <= 60 else 'no'} |"
        )
    return lines + [""]


if __name__ == "__main__":
    main()
