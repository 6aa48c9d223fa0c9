"""Meta-value study (issue 18): does a meta-training recipe beat the same adaptation of the
encoder it started from, on data it never trained on?

Every recipe (``configs/bench/meta_value.yaml``) meta-trains the mean-pooling MiniLM on all
shared datasets except the three benchmark targets (banking77, clinc150, reuters: never
seen, whole datasets left out), then is scored on *meta-validation* classes only (never a
target's test file):
- banking77 and clinc150 fold-01 validation classes (intents), reuters' validation classes;
- all classes of the part at once (full-way), 0, 1 and 5 shots, the same episodes for every
  row;
- rows: `maml` (the run's adaptation), `maml-base` (that same adaptation on the mean-pooling
  MiniLM that was never meta-trained: the meta-value is `maml` - `maml-base`, paired), and
  the cheap baseline on the base MiniLM: `logreg` (frozen embeddings + logistic regression),
  at 0 shots `label-cosine` (each text to its nearest label name).

Resumable: each result is appended to OUTPUT_DIR/meta_value.jsonl when it exists and skipped
on a rerun; meta-models stay in OUTPUT_DIR/<recipe>.

    python scripts/bench/meta_value.py --data_dir ../shared/data --recipes today names-lora
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Results,
    bench_config,
    bench_parser,
    dataset_names,
    mean_pooling_base,
    publish,
)
from common import meta_train as run_meta_training  # noqa: E402

TARGETS = ("banking77", "clinc150", "reuters")
VALIDATION = {
    "banking77": "banking77:train:01:validation",
    "clinc150": "clinc150:train:01:validation",
    "reuters": "reuters:validation",
}
# Held-out test classes of the same three targets (never trained on), for a recipe chosen
# on the validation rows: the final, paired numbers of that choice
TEST = {
    "banking77-test": "banking77:train:01:test",
    "clinc150-test": "clinc150:train:01:test",
    "reuters-test": "reuters:test",
}
CONFIG = bench_config("meta_value")  # configs/bench/meta_value.yaml
COMMON, RECIPES = CONFIG["common"], CONFIG["recipes"]
ADAPTATION = (
    "adapt_head_init",
    "label_names",
    "label_name_weight",
    "logit_scale",
    "head_regularization",
    "inner_steps",
    "inner_learning_rate",
    "adapt_step_candidates",
)


def interpolated(name: str, out: Path, results: Results) -> Path:
    """A run moved back toward its starting encoder (``FewShotModel.interpolated``: start +
    alpha * (run - start), tensor by tensor); the same as ``weight_interpolation`` in the
    recipe, without training again."""
    from fewshot_nlp import FewShotModel

    source, alpha = RECIPES[name]["interpolate"]
    folder = out / name
    if f"{name}/meta" in results and (folder / "fewshot_nlp.json").is_file():
        return folder
    run = out / source
    if not (run / "fewshot_nlp.json").is_file():
        raise SystemExit(f"{name} needs the run {source} first: --recipes {source} {name}")
    FewShotModel.from_pretrained(str(run)).interpolated(alpha).save_pretrained(folder)
    results.add(f"{name}/meta", source=source, alpha=alpha, summary=f"{source} at {alpha}")
    return folder


def meta_train(name: str, data_dir: str, out: Path, results: Results, steps: int | None):
    if "interpolate" in RECIPES[name]:
        return interpolated(name, out, results)
    from fewshot_nlp import TaskSource

    values = {k: v for k, v in {**COMMON, **RECIPES[name]}.items() if k != "curve"}
    excluded = set(values.pop("exclude", []))  # datasets the run must never see
    if steps:
        values["max_steps"] = steps
    validating = bool(values.get("eval_steps"))
    specs = [
        "sgd:train::train" if n == "sgd" and validating else n
        for n in dataset_names(data_dir)
        if n not in TARGETS and n not in excluded
    ]
    sources = [TaskSource.from_spec(s, data_dir) for s in specs]
    if values["k_shot"] == 0:  # names-only episodes: pair tasks (scitail) have no names to use
        sources = [s for s in sources if not s.is_pair_task]
    evals = [TaskSource.from_spec("sgd:validation::validation", data_dir)] if validating else None
    return run_meta_training(out / name, values, sources, evals, results, f"{name}/meta")


def evaluated(model, source, k: int, method: str, episodes: int, key: str, results: Results):
    """One row (full-way, k shots, the same episodes for every model): measured once."""
    from fewshot_nlp.evaluation import evaluate_episodes

    if key in results:
        return results.rows[key]["accuracy"]
    entry = evaluate_episodes(
        model,
        [source],
        n_way="all",
        k_shots=[k],
        q_query=5,
        episodes=episodes,
        seed=0,
        methods=[method],
        progress=False,
    )[0]
    acc = entry["results"][str(k)]["accuracy"]
    results.add(
        key,
        accuracy=acc["mean"],
        ci95=acc["ci95"],
        n_way=len(source.label_names),
        summary=f"{100 * acc['mean']:.2f} ± {100 * (acc['ci95'] or 0):.2f}",
    )
    return acc["mean"]


CURVE_SHOTS, CURVE_EPISODES = (0, 1), 20


def curve(name: str, folder: Path, base, data_dir: str, results: Results, length: int) -> None:
    """Every kept checkpoint of a run (and the final model) against the starting encoder, at
    0 and 1 shots on each validation set: the meta-value against meta-steps."""
    from fewshot_nlp import TaskSource
    from fewshot_nlp.evaluation import MethodRunner

    steps = {int(p.name.split("-")[1]): p for p in folder.glob("checkpoint-*")}
    if (folder / "fewshot_nlp.json").is_file():  # the run has ended
        steps[RECIPES[name]["max_steps"]] = folder
    sources = {t: TaskSource.from_spec(spec, data_dir) for t, spec in VALIDATION.items()}
    for step, path in sorted(steps.items()):
        runner = None
        for target, source in sources.items():
            for k in CURVE_SHOTS:
                key = f"{name}@{step}/{target}/{k}/maml"
                if key not in results:
                    runner = runner or MethodRunner(path, max_length=length, cache_features=True)
                run = evaluated(runner, source, k, "maml", CURVE_EPISODES, key, results)
                start = evaluated(
                    base, source, k, "maml", CURVE_EPISODES, f"curve-base/{target}/{k}", results
                )
                print(f"{name} step {step} {target} {k}-shot: {100 * (run - start):+.2f}")


def reuse_row(results: Results, key: str, name: str, method: str) -> None:
    """The rows that do not depend on the recipe are measured once: the cheap baseline (the
    base MiniLM), and an interpolated recipe's maml-base (its source run's adaptation)."""
    if key in results or method == "maml":
        return
    if method == "maml-base":
        source = RECIPES[name].get("interpolate", (None,))[0]
        same = [key.replace(name, source, 1)] if source else []
    else:
        rest = key.split("/", 1)[1]
        same = [k for k in results.rows if k.split("/", 1)[-1] == rest and "@" not in k]
    for other in same:
        if other in results:
            row = {k: v for k, v in results.rows[other].items() if k != "key"}
            results.add(key, **row, copied_from=other)
            return


def evaluate(
    name, run, base, baseline, data_dir: str, results: Results, episodes: int, shots, sets
):
    from fewshot_nlp import TaskSource

    for target, spec in sets.items():
        source = TaskSource.from_spec(spec, data_dir)
        for k in shots:
            rows = {}
            # the cheap baseline: logistic regression, or at 0-shot the label-name cosine
            cheap = "label-cosine" if k == 0 else "logreg"
            for method, (model, runs_as) in (
                ("maml", (run, "maml")),
                ("maml-base", (base, "maml")),
                (cheap, (baseline, cheap)),
            ):
                key = f"{name}/{target}/{k}/{method}"
                reuse_row(results, key, name, method)
                rows[method] = evaluated(model, source, k, runs_as, episodes, key, results)
            print(
                f"{name} {target} {k}-shot: meta-value "
                f"{100 * (rows['maml'] - rows['maml-base']):+.2f}, vs {cheap} "
                f"{100 * (rows['maml'] - rows[cheap]):+.2f}",
                flush=True,
            )


START, END = "<!-- meta-value:start -->", "<!-- meta-value:end -->"


def curve_table(results: Results) -> list[str]:
    """Meta-value against meta-steps for the recipes that keep their checkpoints."""
    cells = [(t, k) for t in VALIDATION for k in CURVE_SHOTS]
    lines = []
    for name in RECIPES:
        steps = sorted(
            {
                int(key.split("@")[1].split("/")[0])
                for key in results.rows
                if key.startswith(name + "@")
            }
        )
        if not steps:
            continue
        head = " | ".join(f"{t} {k}-shot" for t, k in cells)
        lines += [
            f"Curve of `{name}` (meta-value at each kept step; {CURVE_EPISODES} episodes per "
            "cell, full-way, against the starting encoder on the same episodes):",
            "",
            f"| step | {head} | mean |",
            "|---|" + "---|" * (len(cells) + 1),
        ]
        for step in steps:
            values = []
            for t, k in cells:
                run, base = f"{name}@{step}/{t}/{k}/maml", f"curve-base/{t}/{k}"
                if run in results and base in results:
                    values.append(
                        100 * (results.rows[run]["accuracy"] - results.rows[base]["accuracy"])
                    )
                else:
                    values.append(None)
            if None in values:  # a step is shown once every cell of it is measured
                continue
            shown = " | ".join(f"{v:+.2f}" for v in values)
            lines.append(f"| {step} | {shown} | {sum(values) / len(values):+.2f} |")
        lines.append("")
    return lines


def report(results: Results, episodes: int) -> str:
    """The measured rows as a markdown table: maml, maml-base, the cheap baseline, and the
    meta-value (maml - maml-base) per validation set and shot count, with the mean."""
    lines = [
        START,
        "| recipe | set | shots | ways | maml | maml-base | cheap baseline | meta-value |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in RECIPES:
        for sets, label in ((VALIDATION, "mean"), (TEST, "test mean")):
            values = []
            for target in sets:
                for k in (0, 1, 5):
                    cheap = "label-cosine" if k == 0 else "logreg"
                    keys = [f"{name}/{target}/{k}/{m}" for m in ("maml", "maml-base", cheap)]
                    if not all(key in results for key in keys):
                        continue
                    rows = [results.rows[key] for key in keys]
                    value = 100 * (rows[0]["accuracy"] - rows[1]["accuracy"])
                    values.append(value)
                    cells = " | ".join(row["summary"] for row in rows)
                    lines.append(
                        f"| {name} | {target} | {k} | {rows[0]['n_way']} | {cells} ({cheap}) | "
                        f"{value:+.2f} |"
                    )
            if values:
                mean = sum(values) / len(values)
                lines.append(f"| {name} | **{label}** | | | | | | **{mean:+.2f}** |")
    lines += ["", f"Episodes per row: {episodes} (the same episodes for every method).", ""]
    lines += curve_table(results)
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--output_dir", default="runs/meta_value", help="Runs and results.")
    parser.add_argument("--episodes", type=int, default=60, help="Episodes per row.")
    parser.add_argument("--max_steps", type=int, default=None, help="Override every recipe.")
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 5], help="Shot counts.")
    parser.add_argument("--benchmarks_file", default=None, help="Write the table there too.")
    parser.add_argument("--report_only", action="store_true", help="Only print the table.")
    parser.add_argument(
        "--train_only", action="store_true", help="Meta-train the recipes, evaluate nothing."
    )
    parser.add_argument(
        "--target_split",
        choices=["validation", "test"],
        default="validation",
        help="Rows on the targets' validation classes (to choose a recipe) or, once chosen, "
        "on their test classes.",
    )
    parser.add_argument(
        "--curve_only",
        action="store_true",
        help="Curve recipes: evaluate the checkpoints kept so far, without training on.",
    )
    args = parser.parse_args()
    if args.report_only:
        text = report(Results(Path(args.output_dir) / "meta_value.jsonl"), args.episodes)
        publish(text, args.benchmarks_file, START, END)
        return

    from fewshot_nlp.evaluation import MethodRunner
    from fewshot_nlp.modeling.pretrained import resolve_model_path

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / "meta_value.jsonl")
    length = COMMON["max_length"]
    baseline = MethodRunner(resolve_model_path("minilm"), max_length=length, cache_features=True)
    base_folder = mean_pooling_base(out)
    for name in args.recipes:
        if args.curve_only and RECIPES[name].get("curve"):
            folder = out / name
        else:
            folder = meta_train(name, args.data_dir, out, results, args.max_steps)
        if args.train_only:
            continue
        if not (folder / "fewshot_nlp.json").is_file():  # a curve run still going: a checkpoint
            folder = max(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        run = MethodRunner(folder, max_length=length, cache_features=True)
        # The run's own adaptation, on the encoder before meta-training (head only: the base
        # has no adapters; a merged LoRA run adapts its head only too).
        mirrored = {k: getattr(run.model.config, k) for k in ADAPTATION}
        base = MethodRunner(base_folder, max_length=length, cache_features=True, **mirrored)
        if RECIPES[name].get("curve"):
            curve(name, out / name, base, args.data_dir, results, length)
            continue
        sets = TEST if args.target_split == "test" else VALIDATION
        evaluate(name, run, base, baseline, args.data_dir, results, args.episodes, args.shots, sets)
    text = report(results, args.episodes)
    publish(text, args.benchmarks_file, START, END)


if __name__ == "__main__":
    main()
