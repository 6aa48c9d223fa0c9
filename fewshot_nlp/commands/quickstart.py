"""The whole story on the embedded default: meta-train, evaluate, adapt, export, pipeline.

The recipe is ``configs/quickstart.yaml``; any meta-train flag overrides it (e.g.
``--max_steps 20``). ``--output_dir`` is the quickstart's folder: the meta-model goes to
``OUTPUT_DIR/meta``, the exported classifier to ``OUTPUT_DIR/classifier``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
# The held-out rows: the label names alone, one example and five (as the adapt demo) per class
QUICKSTART_SHOTS = (0, 1, 5)
POOL_SIZE, POOL_OTHERS = 100, 0.3  # the unlabeled row: texts per episode, share of other classes


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as hf_logging

    from ..classifier import adapt
    from ..export import export

    hf_logging.disable_progress_bar()  # per-file load/save bars: the stages are what we print
    t0 = time.perf_counter()
    model_args, args, out = _arguments(argv)
    held, tokenizer = _meta_train(model_args, args)
    scores = _held_out_scores(model_args, args, held)
    source = held[0]
    classes = source.label_names[:8]
    few = [(source.texts[i], c) for c in classes for i in source.label_index[c][:5]]
    adapted = adapt(args.output_dir, few)
    export_dir = export(adapted, tokenizer, out / "classifier", overwrite=True)
    print(
        f"3/4 adapted to {len(classes)} new classes from {len(few)} examples; exported to "
        f"{export_dir}"
    )
    _pipeline_demo(export_dir, source.name, model_args.data_dir, classes)
    summary = {
        "held_out_accuracy": scores,
        "episodes": args.eval_episodes,
        "seconds": round(time.perf_counter() - t0, 1),
        "export": str(export_dir),
    }
    (out / "quickstart.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']} s")
    return 0


def _arguments(argv):
    """The recipe's arguments, flags overriding; the run goes to OUTPUT_DIR/meta."""
    from ..errors import ConfigError
    from ..meta.arguments import parse_meta_train_args

    argv = list(argv or [])
    if "--output_dir" not in argv and "--output-dir" not in argv:
        argv += ["--output_dir", "runs/quickstart"]
    if not RECIPE.is_file() and "--config" not in argv:
        raise ConfigError(f"The quickstart recipe {RECIPE} is missing: pass --config RECIPE.yaml.")
    model_args, args = parse_meta_train_args(
        argv, prog="fewshot-nlp quickstart", description=__doc__, config=str(RECIPE)
    )
    out = Path(args.output_dir)
    args = replace(args, output_dir=str(out / "meta"), overwrite_output_dir=True)
    if not model_args.eval_datasets:
        raise ConfigError("The quickstart needs eval_datasets (held-out classes) in its recipe.")
    return model_args, args, out


def _meta_train(model_args, args):
    """Stage 1: meta-train; the held-out sources and the tokenizer."""
    from ..data.sources import TaskSource
    from ..meta.trainer import MetaTrainer

    order = "first" if args.first_order else "second"
    print(
        f"1/4 {args.max_steps} steps of {order}-order {args.adapt_scope}-MAML "
        f"({args.n_way}-way {args.k_shot}-shot episodes, {args.inner_steps} inner steps, "
        f"{model_args.pooling} pooling, {args.head_init} head, label names "
        f"{args.label_names}) of {model_args.model_name_or_path} on "
        f"{', '.join(model_args.train_datasets)}",
        flush=True,
    )
    data_dir = model_args.data_dir
    train = [TaskSource.from_spec(s, data_dir) for s in model_args.train_datasets]
    held = [TaskSource.from_spec(s, data_dir) for s in model_args.eval_datasets]
    model, tokenizer, lora = model_args.load()
    MetaTrainer(model, args, train, held, tokenizer=tokenizer, lora_config=lora).train()
    return held, tokenizer


def _held_out_scores(model_args, args, held) -> dict:
    """Stage 2: paired episodes on the held-out classes, ours against the cheap baselines
    and against our own adaptation without meta-training."""
    from ..evaluation import MethodRunner, evaluate_episodes
    from ..unlabeled import UnlabeledArguments
    from ..unlabeled.evaluation import TaskPools

    ours = MethodRunner(args.output_dir, cache_features=True)
    base = MethodRunner(ours.model.base_encoder, max_length=args.max_length, cache_features=True)
    # the pool row: each episode also reads unlabeled texts of the held-out source
    ours.unlabeled_pool = TaskPools(
        UnlabeledArguments(), source=held[0], size=POOL_SIZE, distractor_share=POOL_OTHERS
    )
    shots = QUICKSTART_SHOTS
    rows = evaluate_episodes(
        ours,
        held,
        n_way=5,
        k_shots=shots,
        q_query=10,
        episodes=args.eval_episodes,
        seed=1,
        methods=["maml", "maml+pool", "maml-base", "logreg", "prototype", "label-cosine"],
        baseline_model=base,
        progress=False,
    )
    scores = {
        row["method"]: {k: r["accuracy"]["mean"] for k, r in row["results"].items()} for row in rows
    }
    print(
        f"2/4 held-out classes ({', '.join(model_args.eval_datasets)}), 5-way, "
        f"{args.eval_episodes} paired episodes, query accuracy:"
    )
    for k in map(str, shots):
        cheap = (
            f"base MiniLM label-name cosine {scores['label-cosine'][k]:.3f}"
            if k == "0"
            else f"base MiniLM + logistic regression {scores['logreg'][k]:.3f} | cosine "
            f"prototypes {scores['prototype'][k]:.3f}"
        )
        print(
            f"  {k}-shot: ours {scores['maml'][k]:.3f} | ours without meta-training "
            f"{scores['maml-base'][k]:.3f} | {cheap}"
        )
    pooled = [k for k in map(str, shots) if k in scores["maml+pool"]]
    print(
        f"  with {POOL_SIZE} unlabeled {held[0].name} texts per episode "
        f"({int(100 * POOL_OTHERS)} % of other classes): "
        + ", ".join(
            f"{k}-shot ours {scores['maml+pool'][k]:.3f} (without {scores['maml'][k]:.3f})"
            for k in pooled
        )
    )
    return scores


def _pipeline_demo(export_dir, name: str, data_dir, classes) -> None:
    """Stage 4: plain pipeline() on the export, test-set texts of the adapted classes."""
    from transformers import pipeline

    from ..data.sources import TaskSource

    test = TaskSource.from_data_dir(name, data_dir, split="test").restrict_to(classes)
    classifier = pipeline("text-classification", model=str(export_dir))
    texts = [test.texts[test.label_index[c][0]] for c in classes[:4]]
    print("4/4 pipeline('text-classification') on the export (test-set texts):")
    for text, c, pred in zip(texts, classes, classifier(texts)):
        print(f"  {text[:60]!r:<64} -> {pred['label']} ({pred['score']:.2f})  [true: {c}]")
