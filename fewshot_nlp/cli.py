"""`fewshot-nlp meta-train | adapt | predict | episodes | quickstart`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from . import interrupts
from .errors import ConfigError, DataError, FewShotError, TrainingError
from .lazy import lazy_attributes

logger = logging.getLogger(__name__)

# Imported on first use: the signal handlers go in before torch and transformers load.
_REEXPORTED = {
    "ModelDataArguments": ".meta.arguments",
    "PACKAGED_MINILM": ".modeling.pretrained",
    "load_classifier": ".modeling.pretrained",
}


__getattr__ = lazy_attributes(__package__, _REEXPORTED)


def resolve_model_path(name: str) -> str:
    from .modeling.pretrained import resolve_model_path as resolve

    return resolve(name)


def check_push_to_hub(repo_id, token=None):
    from .hub import check_push_to_hub as check

    return check(repo_id, token=token)


def parse_source_spec(spec: str, data_dir):
    from .data.sources import TaskSource

    return TaskSource.from_spec(spec, data_dir)


# ---------------------------------------------------------------- meta-train
def meta_train(argv: list[str]) -> int:
    from .meta.arguments import parse_meta_train_args
    from .meta.trainer import MetaTrainer

    model_args, args = parse_meta_train_args(
        argv,
        prog="fewshot-nlp meta-train",
        description="Meta-train an encoder with MAML on episodes from many datasets.",
    )
    from .meta.run_folder import check_run_output_dir

    check_run_output_dir(args, reads=[resolve_model_path(model_args.model_name_or_path)])
    if args.push_to_hub:
        check_push_to_hub(args.hub_model_id)
    model, tokenizer, lora = model_args.load()
    train = [parse_source_spec(s, model_args.data_dir) for s in model_args.train_datasets]
    evals = [parse_source_spec(s, model_args.data_dir) for s in model_args.eval_datasets]
    trainer = MetaTrainer(model, args, train, evals or None, tokenizer=tokenizer, lora_config=lora)
    state = trainer.train()
    signum = trainer.interrupted_by
    if signum is not None:
        from .meta.checkpointing import sorted_checkpoints

        if trainer.accelerator.is_main_process:
            checkpoints = sorted_checkpoints(Path(args.output_dir))
            where = checkpoints[-1] if checkpoints else args.output_dir
            print(
                f"Interrupted at step {state.global_step} of {args.max_steps}: checkpoint "
                f"written to {where}; no final meta-model in {args.output_dir} yet. Resume "
                f"with the same command plus --resume_from_checkpoint true.",
                file=sys.stderr,
            )
        return 128 + signum  # 130 for Ctrl-C, as shells expect
    if trainer.accelerator.is_main_process:
        print(f"Meta-model written to {args.output_dir} after {state.global_step} steps.")
    return 0


# ---------------------------------------------------------------- adapt / predict
def adapt_command(argv: list[str]) -> int:
    from .argument_parsing import parse_dataclasses
    from .cli_arguments import AdaptArguments, AdaptationArguments, RejectionArguments

    args, adaptation, rejection = parse_dataclasses(
        (AdaptArguments, AdaptationArguments, RejectionArguments),
        argv,
        prog="fewshot-nlp adapt",
        description="Adapt a (meta-trained) model to a few labelled examples and export it.",
    )
    path = _check_adapt_request(args, rejection)

    from transformers import AutoTokenizer

    from .adapt import adapt
    from .export import export

    # the model itself is loaded once, by adapt
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
    adapted = adapt(
        path,
        args.train_file or None,
        labels=args.labels,
        tokenizer=tokenizer,
        trust_remote_code=args.trust_remote_code,
        text_column=args.text_column,
        label_column=args.label_column,
        text_pair_column=args.text_pair_column,
        inner_steps=args.inner_steps,
        inner_learning_rate=args.inner_learning_rate,
        max_length=args.max_length,
        merge_lora=not args.keep_adapter,
        **adaptation.overrides(),
        unknown_label=rejection.unknown_label,
        unknown_data=rejection.unknown_file,
        max_in_scope_loss=rejection.max_in_scope_loss,
        remove_labels=args.remove_labels,
    )
    out = export(
        adapted,
        tokenizer,
        args.output_dir,
        overwrite=args.overwrite,
        keep_adapter=args.keep_adapter,
        push_to_hub=args.push_to_hub,
        hub_model_id=args.hub_model_id,
        private=args.private,
    )
    labels = list(adapted.config.id2label.values())
    from .model_card import AdaptationRecord

    record = AdaptationRecord.of(adapted).rejection
    if record:
        print(rejection_summary(record))
        labels = labels[:-1]
    print(f"Adapted to {len(labels)} classes; exported to {out}")
    return 0


def _check_adapt_request(args, rejection) -> str:
    """Every flag and path of `adapt` checked before anything loads; the model folder."""
    from .meta.model import check_adapt_options
    from .meta.saving import read_meta_info
    from .paths import check_model_path, check_output_dir, check_remote_code

    path = resolve_model_path(args.model)
    check_output_dir(args.output_dir, overwrite=args.overwrite, reads=[path], reserve=True)
    path = check_model_path(path)
    check_remote_code(path, args.trust_remote_code)
    check_adapt_options(
        inner_steps=args.inner_steps,
        inner_learning_rate=args.inner_learning_rate,
        max_length=args.max_length,
    )
    check_rejection_arguments(rejection, args.labels)
    if args.push_to_hub:
        check_push_to_hub(args.hub_model_id)
    if args.keep_adapter and not (read_meta_info(path) or {}).get("lora"):
        raise ConfigError(
            f"--keep-adapter needs a LoRA meta-trained run (adapt_scope: lora, saved without "
            f"merge_lora_on_save); {path} holds no adapter. Drop --keep-adapter to export "
            "full weights."
        )
    return path


def check_rejection_arguments(rejection, labels=None) -> None:
    """The rejection flags, before anything loads: a missing file or a bad target."""
    from .meta.rejection import check_rejection_options

    if rejection.unknown_file and not rejection.unknown_label:
        raise ConfigError("--unknown_file needs --unknown_label NAME (the label they get).")
    check_rejection_options(rejection.unknown_label, rejection.max_in_scope_loss, labels)
    if rejection.unknown_file and not Path(rejection.unknown_file).is_file():
        raise DataError(f"--unknown_file {rejection.unknown_file}: no such file.")


def rejection_summary(record: dict) -> str:
    """One line on how the rejection label was set."""
    line = (
        f"Rejection label {record['label']!r}: threshold {record['threshold']:.3f} "
        f"({record['rule']}), temperature {record['temperature']:.3f}"
    )
    if record.get("in_scope_accuracy") is not None:
        line += (
            f"; held-out in-scope accuracy {100 * record['in_scope_accuracy']:.1f} -> "
            f"{100 * record['in_scope_accuracy_with_rejection']:.1f} with rejection"
        )
    if record.get("unknown_recall") is not None:
        line += f", out-of-scope recall {100 * record['unknown_recall']:.1f}"
    return line + "."


def predict_command(argv: list[str]) -> int:
    from .argument_parsing import parse_dataclasses
    from .cli_arguments import PredictArguments

    args, texts = parse_dataclasses(
        (PredictArguments,),
        argv,
        prog="fewshot-nlp predict",
        description="Top labels of texts given on the command line or in a file (with "
        "--input_file the predictions go to --output_file as JSON lines, or to stdout).",
        positional="Texts to classify.",
    )

    from .paths import atomic_file

    model, texts = _predict_request(args, texts)

    from transformers import pipeline

    from .predict import classify_texts, token_limit

    classifier = pipeline(
        "text-classification",
        model=model,
        top_k=args.top_k,
        trust_remote_code=args.trust_remote_code,
    )
    out = Path(args.output_file) if args.output_file else None
    with atomic_file(out) if out else contextlib.nullcontext() as sink:
        progress = out is not None
        predictions, too_long = classify_texts(
            classifier, texts, args.batch_size, progress=progress
        )
        for text, top in zip(texts, predictions):
            if sink is None:
                shown = ", ".join(f"{p['label']} ({p['score']:.3f})" for p in top)
                print(f"{text!r}: {shown}")
            else:
                record = {"text": text, "label": top[0]["label"], "score": top[0]["score"]}
                sink.write(json.dumps({**record, "top_k": top}, ensure_ascii=False) + "\n")
    if out is not None:  # renamed into place only now: a finished file or none
        print(f"{len(texts)} predictions written to {out}")
    if too_long:
        print(
            f"note: {too_long} of {len(texts)} texts are longer than the model's "
            f"{token_limit(classifier)} "
            "tokens; they were truncated to their first tokens.",
            file=sys.stderr,
        )
    return 0


def _predict_request(args, texts: list[str]) -> tuple[str, list[str]]:
    """The model folder and the texts, every flag and path checked before anything loads."""
    from .data.sources import read_texts
    from .paths import check_model_path, check_output_file, check_remote_code

    if bool(texts) == bool(args.input_file):
        raise ConfigError("Give the texts either as arguments or with --input_file (one of them).")
    for flag, value in (("--top_k", args.top_k), ("--batch_size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}.")
    model = check_model_path(resolve_model_path(args.model))
    if args.output_file:
        check_output_file(
            args.output_file,
            flag="--output_file",
            overwrite=args.overwrite,
            reads=[model],
            reserve=True,
        )
    check_remote_code(model, args.trust_remote_code)
    _refuse_meta_model(model)
    texts = read_texts(args.input_file, args.text_column) if args.input_file else texts
    if not any(text.strip() for text in texts):
        raise ConfigError(f"--input_file {args.input_file} holds no texts to classify.")
    blank = [i + 1 for i, text in enumerate(texts) if not text.strip()]
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (" ..." if len(blank) > 10 else "")
        warnings.warn(
            f"{len(blank)} of {len(texts)} texts are blank (numbers {shown}, counting from "
            "1): they are classified too, so that output rows match input rows, but their "
            "labels say nothing.",
            stacklevel=2,
        )
    return model, texts


def _refuse_meta_model(path: str) -> None:
    """A meta-model's head is a placeholder: its labels mean nothing until it is adapted."""
    from .meta.saving import read_meta_info

    if Path(path).is_dir() and read_meta_info(path) is not None:
        raise ConfigError(
            f"--model {path} is a meta-trained run, not a classifier: its labels are "
            "placeholders. Adapt it to your classes first: fewshot-nlp adapt --model "
            f"{path} --train_file few.jsonl --output_dir my-classifier, then predict with "
            "--model my-classifier."
        )


def episodes_command(argv: list[str]) -> int:
    from .argument_parsing import parse_dataclasses
    from .cli_arguments import EpisodesArguments

    (args,) = parse_dataclasses(
        (EpisodesArguments,),
        argv,
        prog="fewshot-nlp episodes",
        description="Sample and print episodes from the data directory.",
    )
    from .data.episodes import EpisodeSampler, parse_n_way

    sources = [parse_source_spec(s, args.data_dir) for s in args.datasets]
    n_way = parse_n_way(args.n_way)
    sampler = EpisodeSampler(
        sources, n_way, args.k_shot, args.q_query, temperature=args.temperature, seed=args.seed
    )
    print(f"{'source':<12}{'examples':>10}{'classes':>9}{'p(source)':>11}")
    for s, p in zip(sources, sampler.source_probs):
        print(f"{s.name:<12}{len(s):>10}{len(s.label_index):>9}{p:>11.3f}")
    for i in range(args.episodes):
        ep = sampler.sample()
        print(f"\nepisode {i}: {ep.source}, {ep.n_way}-way: {', '.join(ep.label_names)}")
        for text, y in list(zip(ep.support_texts, ep.support_labels))[: 2 * ep.n_way]:
            print(f"  support [{ep.label_names[y]}] {text[:70]}")
    return 0


def evaluate_command(argv: list[str]) -> int:
    from .argument_parsing import parse_dataclasses
    from .cli_arguments import AdaptationArguments, EvaluateArguments, RejectionArguments

    args, adaptation, rejection = parse_dataclasses(
        (EvaluateArguments, AdaptationArguments, RejectionArguments),
        argv,
        prog="fewshot-nlp evaluate",
        description="Episodic or fixed-shot evaluation of the meta-learned adaptation (maml) "
        "against the baselines a user would try (logreg, prototype, finetune, setfit), paired.",
    )
    from .data.episodes import check_counts, parse_n_way
    from .evaluation import check_methods
    from .paths import check_model_path, check_output_file, check_remote_code

    shots = args.k_shot
    check_counts([("episodes", args.episodes), ("q_query", args.q_query)], prefix="--")
    check_counts((("k_shot", k) for k in shots), prefix="--", minimum=0)
    check_methods(args.method, [] if args.train_file or args.test_file else shots)
    _check_out_of_scope_flags(args, rejection)
    methods, caps = args.method, _episode_caps(args.max_episodes)
    model_path = resolve_model_path(args.model)
    for flag, value in (("--output_file", args.output_file), ("--plot", args.plot)):
        if value:
            check_output_file(
                value, flag=flag, overwrite=args.overwrite, reads=[model_path], reserve=True
            )
    model_path = check_model_path(model_path)
    check_remote_code(model_path, args.trust_remote_code)
    if args.baseline_model:
        baseline_path = check_model_path(resolve_model_path(args.baseline_model))
        check_remote_code(baseline_path, args.trust_remote_code, flag="--baseline_model")

    from .data.sources import TaskSource
    from .evaluation import evaluate_episodes, format_table

    model, baseline = _method_runners(args, adaptation, model_path)
    if args.train_file or args.test_file:
        results, table = _evaluate_files(args, model, baseline, methods, rejection)
    else:
        if not args.dataset:
            raise ConfigError("Give --dataset (episodic) or --train_file/--test_file (fixed-shot).")
        source = TaskSource.from_data_dir(
            args.dataset, args.data_dir, split=args.split, fold=args.fold, part=args.part
        )
        results = evaluate_episodes(
            model,
            [source],
            n_way=parse_n_way(args.n_way),
            k_shots=shots,
            q_query=args.q_query,
            episodes=args.episodes,
            seed=args.seed,
            methods=methods,
            baseline_model=baseline,
            method_episodes=caps,
        )
        table = format_table(results)
    print(table)
    values = {**asdict(args), **asdict(adaptation)}
    _write_evaluation(results, values, argv, args.output_file, args.plot)
    return 0


def _write_evaluation(results, values: dict, argv, output_file, plot) -> None:
    """The result file says how to reproduce itself: every flag and the command line."""
    from .evaluation import plot_accuracy, write_results

    settings = {k: v for k, v in values.items() if v is not None}
    command = shlex.join(["fewshot-nlp", "evaluate", *argv])
    for row in results:
        row["settings"], row["command"] = settings, command
    if output_file:
        print(f"results: {write_results(results, output_file)}")
    if plot:
        print(f"plot: {plot_accuracy(results, plot)}")


def _method_runners(args, adaptation, model_path):
    """The evaluated model (under the adaptation flags) and the baseline model, if named."""
    from .evaluation import FinetuneConfig, MethodRunner

    finetune = FinetuneConfig(
        epochs=args.finetune_epochs,
        batch_size=args.finetune_batch_size,
        learning_rate=args.finetune_learning_rate,
    )

    def load(path, **extra):
        return MethodRunner(
            resolve_model_path(path),
            finetune=finetune,
            prototype_pooling=args.prototype_pooling,
            prototype_distance=args.prototype_distance,
            logreg_c=args.logreg_c,
            trust_remote_code=args.trust_remote_code,
            **extra,
        )

    model = load(model_path, **adaptation.overrides())
    return model, load(args.baseline_model) if args.baseline_model else None


def _evaluate_files(args, model, baseline, methods, rejection) -> tuple[list[dict], str]:
    """The fixed-shot protocol (and, with --out_of_scope_file, the out-of-scope one)."""
    from .data.sources import TaskSource, resolve_data_dir
    from .evaluation import evaluate_fixed, format_table, get_method
    from .out_of_scope import format_out_of_scope_table

    if not args.test_file:
        raise ConfigError(
            "The fixed-shot protocol needs --test_file (and --train_file; without one, the "
            "test file's label names alone: a 0-shot row)."
        )
    root = resolve_data_dir(args.data_dir) if args.data_dir else None

    def file(name):
        path = Path(name)
        return path if path.exists() or root is None else root / name

    train = TaskSource.from_files(file(args.train_file), name="train") if args.train_file else None
    test = TaskSource.from_files(file(args.test_file), name=Path(args.test_file).parts[0])
    if train is None:  # 0 shots, as in the episodic protocol: the methods that use names
        methods = [m for m in methods if get_method(m).zero_shot]
        if not methods:
            raise ConfigError(
                "Without --train_file the fixed-shot row is 0-shot (the test file's label "
                "names alone), and none of the chosen --method values works without "
                "examples: add maml or label-cosine, or give --train_file."
            )
    if args.out_of_scope_file:
        results = _evaluate_out_of_scope(
            model, train, test, file(args.out_of_scope_file), methods, baseline, rejection
        )
        return results, format_out_of_scope_table(results)
    results = evaluate_fixed(model, train, test, methods=methods, baseline_model=baseline)
    return results, format_table(results)


def _episode_caps(max_episodes: list[str] | None) -> dict[str, int]:
    """``--max_episodes METHOD=N ...`` as caps, checked against the methods."""
    from .evaluation import METHODS

    caps = {}
    for item in max_episodes or []:
        name, _, value = item.partition("=")
        if name.strip() not in METHODS or not value.strip().isdigit():
            raise ConfigError(
                f"--max_episodes {item!r}: give METHOD=N pairs, e.g. finetune=100 (methods: "
                f"{', '.join(METHODS)})."
            )
        caps[name.strip()] = int(value)
    return caps


def _check_out_of_scope_flags(args, rejection) -> None:
    check_rejection_arguments(rejection)
    if args.out_of_scope_file and not (args.train_file and args.test_file):
        raise ConfigError(
            "--out_of_scope_file belongs to the fixed-shot protocol: give --train_file and "
            "--test_file too."
        )
    if args.out_of_scope_file and args.plot:
        raise ConfigError("--plot draws accuracy against shots; the out-of-scope table has none.")
    if (rejection.unknown_label or rejection.unknown_file) and not args.out_of_scope_file:
        raise ConfigError(
            "--unknown_label / --unknown_file set the rejection of the out-of-scope protocol: "
            "give --out_of_scope_file (texts of no class to score) too."
        )


def _evaluate_out_of_scope(model, train, test, path, methods, baseline, rejection) -> list[dict]:
    from .data.sources import read_texts
    from .out_of_scope import OUT_OF_SCOPE_METHODS, evaluate_out_of_scope

    kept = [m for m in methods if m in OUT_OF_SCOPE_METHODS]
    skipped = [m for m in methods if m not in OUT_OF_SCOPE_METHODS]
    if not kept:
        raise ConfigError(
            f"--out_of_scope_file scores {list(OUT_OF_SCOPE_METHODS)}; --method gave {methods}."
        )
    if skipped:
        logger.info("out-of-scope protocol: %s have no rejection rule, skipped", skipped)
    return evaluate_out_of_scope(
        model,
        train,
        test,
        [text for text in read_texts(path) if text.strip()],
        methods=kept,
        baseline_model=baseline,
        unknown_label=rejection.unknown_label or "out_of_scope",
        max_in_scope_loss=rejection.max_in_scope_loss,
        unknown_data=rejection.unknown_file,
    )


COMMANDS = {
    "meta-train": (meta_train, "Meta-train an encoder with MAML."),
    "adapt": (adapt_command, "Adapt to a few labelled examples and export."),
    "predict": (predict_command, "Classify texts with an exported model."),
    "evaluate": (evaluate_command, "Episodic / fixed-shot evaluation against baselines."),
    "episodes": (episodes_command, "Print sample episodes and the source mixture."),
    "quickstart": (None, "The whole story on the embedded default (see README)."),
}


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM are recorded from the first moment, so one that lands while a
    # library loads (or inside a finalizer) still ends the command as interrupted.
    previous = interrupts.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        interrupts.restore(previous)
        print("usage: fewshot-nlp {" + ",".join(COMMANDS) + "} ...\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<12}{text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command = argv[0]
    show_warning = warnings.showwarning
    try:
        _quiet_third_parties(command)
        if command == "quickstart":
            from .quickstart import main as handler
        else:
            handler = COMMANDS[command][0]
        code = handler(argv[1:])
        interrupts.check()  # a signal swallowed on the way: the command did not finish
        return code
    except BaseException as error:  # sorted below; the rest is re-raised
        signum = interrupts.received()
        if signum is None and isinstance(error, KeyboardInterrupt):
            signum = signal.SIGINT
        if signum is not None:  # whatever the interrupt turned into on its way out
            print(
                f"fewshot-nlp {command}: interrupted (nothing half-written kept).",
                file=sys.stderr,
            )
            return 128 + signum  # 130 for Ctrl-C, as shells expect
        if isinstance(error, (FewShotError, TrainingError)):
            print(f"fewshot-nlp {command}: error: {error}", file=sys.stderr)
            return 2
        if isinstance(error, PermissionError):
            print(
                f"fewshot-nlp {command}: error: {error.strerror}: {error.filename}. Check "
                "that you may read (and, for outputs, write) that path.",
                file=sys.stderr,
            )
            return 2
        raise
    finally:
        from .paths import release_reservations

        release_reservations()  # outputs claimed and never filled (an error, an interrupt)
        interrupts.restore(previous)
        warnings.showwarning = show_warning


def _quiet_third_parties(command: str) -> None:
    """A command's output is its own: our progress bars and messages, warnings as one line
    (``fewshot-nlp adapt: warning: ...``), no download-style bars of the libraries below
    (transformers' weight loading and shard writing; ``HF_HUB_DISABLE_PROGRESS_BARS=0``
    brings them back), info messages of the library on stderr."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"fewshot-nlp {command}: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    log = logging.getLogger("fewshot_nlp")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
