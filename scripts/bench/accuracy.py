"""Accuracy benchmark: leave-one-dataset-out meta-training, then paired evaluation.

For each target (banking77, clinc150: intents; reuters: news topics) the packaged MiniLM,
with its head on the mean of the last hidden states (``pooling="mean"``), is meta-trained
on every *other* shared dataset (never on the target) with the recipe chosen in the
meta-value study (``configs/bench/accuracy.yaml``), the best step (0 included) chosen on
another dataset's meta-validation classes (never on the target), then:
- episodic: 5-way 0-shot (label names alone), 1-shot and 5-shot on the target's held-out
  classes (fold 01 test part for the intent sets; reuters' test classes), the same episodes
  for every method;
- fixed-shot: all classes, banking77/clinc150 `fewshot/train_{5,10}.jsonl` -> `test.jsonl`
  (reuters: a seeded 5/10-shot draw from its test classes, the rest scored), and 0-shot
  (the label names of every class, the same test file).
Methods (all paired):
- maml: the meta-model's adaptation (logistic-regression head on its features and the label
  names); maml-nonames: the same without label names;
- maml-base: the same adaptation on the encoder before meta-training (the meta-value is
  maml - maml-base);
- label-cosine (0 shots) / logreg / prototype / finetune: the base MiniLM (each text to its
  nearest label name; frozen mean-pooled L2-normalised embeddings + scikit-learn logistic
  regression C=10; cosine prototypes; Trainer-style fine-tuning with a new head, on the first
  `finetune_episodes` episodes only, run after every other row of every target);
- setfit (only with `--methods ... setfit`): SetFit on the base MiniLM, fixed 5-shot rows.

Resumable: every result is appended to OUTPUT_DIR/results.jsonl as soon as it exists and is
skipped when the script runs again; meta-models are kept in OUTPUT_DIR.

    python scripts/bench/accuracy.py --data_dir ../shared/data            # CPU, < 120 min
    python scripts/bench/accuracy.py --data_dir ../shared/data --methods setfit  # then SetFit
    python scripts/bench/accuracy.py --data_dir ../shared/data --setting smoke
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Results,
    bench_config,
    bench_parser,
    dataset_names,
)
from common import meta_train as run_meta_training  # noqa: E402
from common import write_section as write_text_section  # noqa: E402

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
CONFIG = bench_config("accuracy")  # configs/bench/accuracy.yaml: the recipe and the sizes
RECIPE, SETTINGS = CONFIG["recipe"], CONFIG["settings"]
START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"
PROTOCOLS = (("episodic", (0, 1, 5)), ("fixed", (0, 5, 10)))


def meta_train(target: str, data_dir: str, setting: dict, out: Path, results: Results):
    from fewshot_nlp import TaskSource

    validation = VALIDATION[target]
    specs = [
        f"{n}:train:01:train" if n == validation else n
        for n in dataset_names(data_dir)
        if n != target
    ]
    sources = [TaskSource.from_spec(s, data_dir) for s in specs]
    # names-only episodes: a pair task (scitail) has no label names to classify by
    sources = [s for s in sources if not s.is_pair_task]
    values = dict(
        RECIPE,
        max_steps=setting["max_steps"],
        max_length=setting["max_length"],
        seed=0,
        logging_steps=50,
        eval_steps=setting["eval_steps"],
        eval_episodes=setting["eval_episodes"],
        load_best_model_at_end=True,
        save_total_limit=1,
        use_cpu=True,
    )
    evals = [TaskSource.from_spec(f"{validation}:train:01:validation", data_dir)]
    return run_meta_training(
        out / f"meta-{target}", values, sources, evals, results, f"{target}/meta"
    )


def held_out(target: str, data_dir: str):
    from fewshot_nlp import TaskSource

    if target == "reuters":  # a class-split dataset: test.jsonl holds the test classes
        return TaskSource.from_data_dir(target, data_dir, split="test")
    return TaskSource.from_data_dir(target, data_dir, split="test", fold="01", part="test")


def fixed_split(target: str, shots: int, data_dir: str):
    """(train, test) of the fixed protocol; at 0 shots the train part is unused (the intent
    sets' whole test file; reuters: the same test part as at 5 shots)."""
    from fewshot_nlp import TaskSource

    if target != "reuters":
        if shots == 0:
            return None, TaskSource.from_data_dir(target, data_dir, split="test")
        train = TaskSource.from_files(
            f"{data_dir}/{target}/fewshot/train_{shots}.jsonl", name=target
        )
        return train, TaskSource.from_data_dir(target, data_dir, split="test")
    source = TaskSource.from_data_dir(target, data_dir, split="test")
    rng = random.Random(0)
    train, test = [], []
    drawn = max(shots, 5)  # the 0- and 5-shot rows score the same test part
    for label, ids in source.label_index.items():
        ids = list(ids)
        rng.shuffle(ids)
        train += [(source.texts[i], label) for i in ids[:shots]]
        test += [(source.texts[i], label) for i in ids[drawn:]]
    make = lambda rows: TaskSource(  # noqa: E731
        name=target, texts=[t for t, _ in rows], labels=[y for _, y in rows]
    )
    return (make(train) if train else None), make(test)


# Which methods have a row at each shot count: 0 shots is the label names alone (against the
# base encoder's label-name cosine); the slow ones (fine-tuning; SetFit, on the fixed 5-shot
# rows only and when asked for: about 25 CPU minutes per intent target) run after every target.
ZERO_SHOT_METHODS = ("maml", "maml-base", "label-cosine")
SHOT_METHODS = ("maml", "maml-base", "maml-nonames", "logreg", "prototype")
SLOW_METHODS = ("finetune", "setfit")
DEFAULT_METHODS = (*SHOT_METHODS, "label-cosine", "finetune")


def rows_at(protocol: str, shots: int) -> tuple[str, ...]:
    """The methods with a row at ``shots`` of ``protocol``."""
    if shots == 0:
        return ZERO_SHOT_METHODS
    setfit = ("setfit",) if (protocol, shots) == ("fixed", 5) else ()
    return (*SHOT_METHODS, "finetune", *setfit)


def evaluate_target(target, data_dir, setting, models, results, methods) -> None:
    """Every row of one target for ``methods`` (those without a row at a shot count are
    skipped there); each result is stored as soon as it exists."""
    from fewshot_nlp.evaluation import evaluate_episodes, evaluate_fixed

    common = dict(
        n_way=5, q_query=setting["q_query"], episodes=setting["episodes"], seed=0, progress=False
    )
    held = [held_out(target, data_dir)]
    for k in (0, 1, 5):
        for method in methods:
            key = f"{target}/episodic/{k}/{method}"
            if key in results or method not in rows_at("episodic", k):
                continue
            model, runs_as = models[method]
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
    for shots in (0, 5, 10):
        train, test = fixed_split(target, shots, data_dir)
        for method in methods:
            key = f"{target}/fixed/{shots}/{method}"
            if key in results or method not in rows_at("fixed", shots):
                continue
            model, runs_as = models[method]
            entry = evaluate_fixed(
                model, train if shots else None, test, methods=[runs_as], shots=str(shots)
            )[0]
            r = entry["results"][str(shots)]
            results.add(key, entry=entry, summary=f"{100 * r['accuracy']['mean']:.2f}")


def time_adapt(target: str, data_dir: str, run: Path, results: Results) -> None:
    """Seconds for `adapt` itself (load, adapt, standard head; no test set) on the 5-shot
    file: 77 classes x 5 examples for banking77."""
    key = f"{target}/adapt_seconds"
    if key in results or target == "reuters":
        return
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.classifier.record import AdaptationRecord

    train, _ = fixed_split(target, 5, data_dir)
    start = time.perf_counter()
    model = adapt(str(run), list(zip(train.texts, train.labels)))
    seconds = time.perf_counter() - start
    record = AdaptationRecord.of(model)
    results.add(
        key,
        seconds=seconds,
        classes=record.classes,
        examples=record.examples,
        label_names_used=record.label_names_used,
        summary=f"{seconds:.1f} s for {record.classes} classes x 5",
    )


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--setting", choices=list(SETTINGS), default="cpu", help="Size.")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), help="Target datasets.")
    parser.add_argument("--output_dir", default="runs/bench", help="Runs and results go here.")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        choices=[*SHOT_METHODS, "label-cosine", *SLOW_METHODS],
        help="Measure only these methods' rows now (the others stay for a later run); "
        "setfit (fixed 5-shot rows, the `setfit` extra) only when named.",
    )
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
        runs = {}
        for target in args.targets:
            run = meta_train(target, args.data_dir, setting, out, results)
            meta = MethodRunner(run, max_length=length, cache_features=True)
            runs[target] = models = {
                "maml": (meta, "maml"),
                # the run's own adaptation on the encoder it started from (not meta-trained)
                "maml-base": (meta.with_model(meta.model.without_meta_training()), "maml"),
                "maml-nonames": (
                    MethodRunner(run, max_length=length, cache_features=True, label_names="never"),
                    "maml",
                ),
                "label-cosine": (base, "label-cosine"),
                "logreg": (base, "logreg"),
                "prototype": (base, "prototype"),
                "finetune": (base, "finetune"),
                "setfit": (base, "setfit"),
            }
            methods = [m for m in args.methods if m not in SLOW_METHODS]
            evaluate_target(target, args.data_dir, setting, models, results, methods)
            time_adapt(target, args.data_dir, run, results)
        slow = [m for m in args.methods if m in SLOW_METHODS]
        for target, models in runs.items():
            evaluate_target(target, args.data_dir, setting, models, results, slow)
        print(f"benchmark done in {(time.perf_counter() - began) / 60:.1f} min", flush=True)
    write_section(results, args.setting, setting, Path(args.benchmarks_file))


def write_section(results: Results, name: str, setting: dict, path: Path) -> None:
    rows = results.rows
    lines = [
        START,
        "## Accuracy (`scripts/bench/accuracy.py`)",
        "",
        f"Setting `{name}` ({json.dumps(setting)}), 2 CPU cores. Per target, the mean-pooling "
        "MiniLM meta-trained on every other shared dataset with the recipe chosen on "
        f"meta-validation classes ({json.dumps(RECIPE)}), the best step (0 included) chosen "
        "on another dataset's meta-validation classes (full-way, 0 and 1 shots), the saved "
        "model then moved back toward the starting encoder (`weight_interpolation`). "
        "Adaptation: a logistic-regression head on the support and the label names, no "
        "encoder step. `maml-base` is that same adaptation on the encoder before "
        "meta-training: `maml` - `maml-base` is what meta-training added. 0 shots: the label "
        "names alone (`label-cosine`: each text to the nearest label name on the base "
        "MiniLM). Episodic rows: mean ± 95% CI over the same episodes for every method "
        "(finetune: the first episodes only, see the column).",
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
        for protocol, shots_list in PROTOCOLS:
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
                    method = key.rsplit("/", 1)[1]
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
    lines += meta_value_table(rows) + targets_table(rows)
    lines.append(END)
    write_text_section("\n".join(lines), path, START, END)


def meta_value_table(rows: dict) -> list[str]:
    """Every row paired: what meta-training added (maml - maml-base), and maml against the
    strongest cheap baseline (logistic regression; label-name cosine at 0 shots)."""

    def acc(key):
        row = rows.get(key)
        return 100 * row["entry"]["results"][key.split("/")[2]]["accuracy"]["mean"] if row else None

    lines = [
        "### Meta-value: what meta-training added, row by row",
        "",
        "| target | row | maml | maml-base | meta-value | cheap baseline | maml - cheap |",
        "|---|---|---|---|---|---|---|",
    ]
    values, low_shot = [], []
    for target in TARGETS:
        for protocol, shots_list in PROTOCOLS:
            for shots in shots_list:
                cheap = "label-cosine" if shots == 0 else "logreg"
                ours, start, other = (
                    acc(f"{target}/{protocol}/{shots}/{m}") for m in ("maml", "maml-base", cheap)
                )
                if None in (ours, start, other):
                    continue
                values.append(ours - start)
                if shots <= 1:
                    low_shot.append(ours - start)
                lines.append(
                    f"| {target} | {protocol} {shots}-shot | {ours:.2f} | {start:.2f} | "
                    f"{ours - start:+.2f} | {other:.2f} ({cheap}) | {ours - other:+.2f} |"
                )
    if values:
        lines += [
            "",
            f"Meta-value: mean {sum(values) / len(values):+.2f} over {len(values)} rows "
            f"(target >= +2.0), worst row {min(values):+.2f} (target >= -0.5)"
            + (
                f"; mean over the 0- and 1-shot rows {sum(low_shot) / len(low_shot):+.2f} "
                "(target >= +3)."
                if low_shot
                else "."
            ),
        ]
    return lines + [""]


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
    for target, shots, goal in (
        ("banking77", 5, 84),
        ("clinc150", 5, 91),
        ("banking77", 10, 88),
        ("clinc150", 10, 93),
    ):
        ours = acc(target, "fixed", shots, "maml")
        if ours is not None:
            lines.append(
                f"| fixed {shots}-shot >= {goal} | {target} | {ours:.2f} | | {ours - goal:+.2f} "
                f"| {'yes' if ours >= goal else 'no'} |"
            )
    for target in ("banking77", "clinc150"):
        ours, cosine = (acc(target, "fixed", 0, m) for m in ("maml", "label-cosine"))
        if ours is not None and cosine is not None:
            lines.append(
                f"| 0-shot full-way >= label-cosine + 5 | {target} | {ours:.2f} | "
                f"(label-cosine {cosine:.2f}) | {ours - cosine:+.2f} | "
                f"{'yes' if ours >= cosine + 5 else 'no'} |"
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
