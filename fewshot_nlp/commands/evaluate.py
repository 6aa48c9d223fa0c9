"""`fewshot-nlp evaluate`: the episodic, fixed-shot and out-of-scope protocols on the
command line, every method paired on the same tasks."""

from __future__ import annotations

import shlex
from dataclasses import asdict

from ..errors import ConfigError
from .common import model_folder, model_with_outputs, parse_with_adaptation, resolve_model_path

DESCRIPTION = (
    "Episodic or fixed-shot evaluation of the meta-learned adaptation (maml) against the "
    "baselines a user would try (logreg, prototype, finetune, setfit), paired."
)


def main(argv: list[str]) -> int:
    from ..unlabeled.arguments import UnlabeledArguments
    from .arguments import EvaluateArguments

    args, adaptation, unlabeled = parse_with_adaptation(
        EvaluateArguments, argv, "evaluate", DESCRIPTION, wings=(UnlabeledArguments,)
    )
    if _is_multi_label(args):
        _check_no_pool(unlabeled, "multi-label evaluation")
        return _evaluate_multi_label(args, adaptation, argv)
    _check_pool_request(args, adaptation, unlabeled)
    caps, model_path, baseline_path = _check_request(args, adaptation)

    from ..data.episodes import parse_n_way
    from ..data.sources import TaskSource
    from ..evaluation import evaluate_episodes, evaluate_files, format_table

    model, baseline = _method_runners(args, adaptation, model_path, baseline_path)
    if _pool_methods(args):
        _attach_pools(args, unlabeled, model, baseline)
    if args.train_file or args.test_file:
        results, table = evaluate_files(
            model,
            args.train_file,
            args.test_file,
            methods=args.method,
            baseline_model=baseline,
            data_dir=args.data_dir,
            out_of_scope_file=args.out_of_scope_file,
            rejection=adaptation,
        )
    else:
        source = TaskSource.from_data_dir(
            args.dataset, args.data_dir, split=args.split, fold=args.fold, part=args.part
        )
        results = evaluate_episodes(
            model,
            [source],
            n_way=parse_n_way(args.n_way),
            k_shots=args.k_shot,
            q_query=args.q_query,
            episodes=args.episodes,
            seed=args.seed,
            methods=args.method,
            baseline_model=baseline,
            method_episodes=caps,
        )
        table = format_table(results)
    print(table)
    settings = {**asdict(args), **asdict(adaptation), **asdict(unlabeled)}
    _write(results, settings, argv, args.output_file, args.plot)
    return 0


def _pool_methods(args) -> list[str]:
    from ..unlabeled.arguments import POOL_METHODS

    return [m for m in args.method if m in POOL_METHODS]


def _check_no_pool(unlabeled, what: str) -> None:
    if unlabeled.unlabeled_data is not None or unlabeled.episode_pool:
        raise ConfigError(f"--unlabeled_file / --episode_pool are not read by {what}.")


def _check_pool_request(args, adaptation, unlabeled) -> None:
    """The pool methods and the pool go together; the pool file is checked before loading."""
    wanted = _pool_methods(args)
    fixed = bool(args.train_file or args.test_file)
    given = unlabeled.unlabeled_data if fixed else unlabeled.episode_pool
    if not wanted:
        if unlabeled.unlabeled_data is not None or unlabeled.episode_pool:
            raise ConfigError(
                "An unlabeled pool is read by the +pool methods: add --method maml+pool "
                "(and maml-base+pool, logreg+pool for the paired rows)."
            )
        return
    if not given:
        need = "--unlabeled_file FILE" if fixed else "--episode_pool N"
        raise ConfigError(
            f"--method {wanted} read(s) an unlabeled pool: the "
            f"{'fixed-shot' if fixed else 'episodic'} protocol takes it from {need}."
        )
    if fixed and unlabeled.episode_pool:
        raise ConfigError("--episode_pool is for the episodic protocol (--dataset).")
    if not fixed and unlabeled.unlabeled_data is not None:
        raise ConfigError(
            "--unlabeled_file is for the fixed-shot protocol; episodes draw their own pool "
            "(--episode_pool N)."
        )
    if args.out_of_scope_file or adaptation.unknown_label:
        raise ConfigError("The +pool methods do not run the out-of-scope protocol.")
    import fewshot_nlp.unlabeled.evaluation  # noqa: F401  (registers the +pool methods)

    if fixed:
        from ..unlabeled.pool import check_pool_file

        check_pool_file(unlabeled.unlabeled_data)


def _attach_pools(args, unlabeled, model, baseline) -> None:
    """Every runner reads the same pools (``unlabeled.evaluation.TaskPools``)."""
    from ..unlabeled.evaluation import TaskPools
    from ..unlabeled.pool import read_pool

    if args.train_file or args.test_file:
        labelled = _labelled_texts(args)
        pool = read_pool(
            unlabeled.unlabeled_data,
            labelled=labelled,
            max_unlabeled=unlabeled.max_unlabeled,
            text_column="text",
            seed=unlabeled.pool_seed,
        )
        print(f"Unlabeled pool: {pool.summary()}.")
        pools = TaskPools(unlabeled, texts=pool.texts)
    else:
        from ..data.sources import TaskSource

        source = TaskSource.from_data_dir(
            args.dataset, args.data_dir, split=args.split, fold=args.fold, part=args.part
        )
        pools = TaskPools(
            unlabeled,
            source=source,
            size=unlabeled.episode_pool,
            distractor_share=unlabeled.distractor_share,
        )
    for runner in (model, baseline):
        if runner is not None and not isinstance(runner, str):
            runner.unlabeled_pool = pools


def _labelled_texts(args) -> list[str]:
    """The training and test texts: a pool text that is one of them is taken out."""
    from ..data.sources import TaskSource

    files = [f for f in (args.train_file, args.test_file) if f]
    texts: list[str] = []
    for f in files:
        texts += TaskSource.from_files([f], name="pool-check").texts
    return texts


def _is_multi_label(args) -> bool:
    from ..multilabel import is_multilabel_file

    return bool(args.test_file) and is_multilabel_file([args.test_file], args.labels_column)


def _evaluate_multi_label(args, adaptation, argv) -> int:
    """The multi-label protocol: a fixed --train_file or K-shot sets from --support_pool."""
    from ..meta.model import FewShotModel
    from ..multilabel import MultiLabelArguments, evaluate_multilabel, read_multilabel

    methods, model_path = _check_multi_label_request(args, adaptation)
    options = MultiLabelArguments(
        label_names=adaptation.label_names or "always", max_length=adaptation.max_length
    )
    read = dict(labels_column=args.labels_column)
    test = read_multilabel([args.test_file], **read)
    train = (
        read_multilabel([args.train_file], labels=test.names, **read) if args.train_file else None
    )
    pool = read_multilabel([args.support_pool], **read) if args.support_pool else None
    load = dict(trust_remote_code=args.trust_remote_code, cache_features=True)
    model = FewShotModel.from_pretrained(model_path, **load)
    baseline = None
    if args.baseline_model:
        named = resolve_model_path(args.baseline_model)
        folder = model_folder(named, args.trust_remote_code, "--baseline_model")
        baseline = FewShotModel.from_pretrained(folder, **load)
    rows = evaluate_multilabel(
        model,
        test,
        train=train,
        pool=pool,
        k_shots=args.k_shot if pool is not None else (),
        seeds=args.seeds,
        methods=methods,
        args=options,
        baseline_model=baseline,
    )
    print(multi_label_table(rows))
    _write(rows, {**asdict(args), **asdict(adaptation)}, argv, args.output_file, None)
    return 0


def _check_multi_label_request(args, adaptation) -> tuple[list[str], str]:
    """The methods and the model folder, every flag checked before anything loads."""
    from ..evaluation.methods import DEFAULT_METHODS as SINGLE_LABEL
    from ..multilabel.arguments import DEFAULT_METHODS, METHODS

    if bool(args.train_file) == bool(args.support_pool):
        raise ConfigError(
            "A multi-label --test_file takes --train_file (a fixed support set) or "
            "--support_pool with --k_shot and --seeds (sets drawn from it), one of them."
        )
    if args.out_of_scope_file or adaptation.unknown_label or args.plot:
        raise ConfigError(
            "--out_of_scope_file, --unknown_label and --plot are single-label; a multi-label "
            "model says 'none of these' by turning no label on."
        )
    methods = list(DEFAULT_METHODS) if args.method == list(SINGLE_LABEL) else args.method
    wrong = sorted(set(methods) - set(METHODS))
    if wrong:
        raise ConfigError(f"--method {wrong}: multi-label methods are {list(METHODS)}.")
    if args.support_pool:
        from ..data.episodes import check_counts

        counts = [("seeds", args.seeds), *(("k_shot", k) for k in args.k_shot)]
        check_counts(counts, prefix="--")
    return methods, model_with_outputs(args, {"--output_file": args.output_file})


def multi_label_table(rows: list[dict]) -> str:
    """Mean ± 95 % CI over the support sets, in percent."""

    def cell(value: dict) -> str:
        ci = f" ± {100 * value['ci95']:.1f}" if value["ci95"] is not None else ""
        return f"{100 * value['mean']:.1f}{ci}"

    lines = [
        "| method | shots | micro-F1 | macro-F1 | exact match |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        scores = " | ".join(cell(row[k]) for k in ("micro_f1", "macro_f1", "exact_match"))
        lines.append(f"| {row['method']} | {row['k_shot']} | {scores} |")
    return "\n".join(lines)


def _check_request(args, adaptation) -> tuple[dict[str, int], str, str | None]:
    """Every flag, file and method checked before any model loads; the episode caps, the
    model folder and the baseline's."""
    from ..data.episodes import check_counts
    from ..evaluation import check_methods, parse_episode_caps

    check_counts([("episodes", args.episodes), ("q_query", args.q_query)], prefix="--")
    check_counts((("k_shot", k) for k in args.k_shot), prefix="--", minimum=0)
    files = bool(args.train_file or args.test_file)
    if not files and not args.dataset:
        raise ConfigError("Give --dataset (episodic) or --train_file/--test_file (fixed-shot).")
    check_methods(args.method, [] if files else args.k_shot)
    _check_out_of_scope_flags(args, adaptation)
    caps = parse_episode_caps(args.max_episodes)
    model_path = model_with_outputs(args, {"--output_file": args.output_file, "--plot": args.plot})
    baseline_path = None
    if args.baseline_model:
        baseline_path = model_folder(
            resolve_model_path(args.baseline_model), args.trust_remote_code, "--baseline_model"
        )
    return caps, model_path, baseline_path


def _check_out_of_scope_flags(args, adaptation) -> None:
    if args.out_of_scope_file and not (args.train_file and args.test_file):
        raise ConfigError(
            "--out_of_scope_file belongs to the fixed-shot protocol: give --train_file and "
            "--test_file too."
        )
    if args.out_of_scope_file and args.plot:
        raise ConfigError("--plot draws accuracy against shots; the out-of-scope table has none.")
    if (adaptation.unknown_label or adaptation.unknown_data) and not args.out_of_scope_file:
        raise ConfigError(
            "--unknown_label / --unknown_file set the rejection of the out-of-scope protocol: "
            "give --out_of_scope_file (texts of no class to score) too."
        )


def _method_runners(args, adaptation, model_path: str, baseline_path: str | None):
    """The evaluated model (under the adaptation flags) and the baseline model, if named."""
    from ..evaluation import FinetuneConfig, MethodRunner

    finetune = FinetuneConfig(
        epochs=args.finetune_epochs,
        batch_size=args.finetune_batch_size,
        learning_rate=args.finetune_learning_rate,
    )

    def load(path, **extra):
        return MethodRunner(
            path,
            finetune=finetune,
            prototype_pooling=args.prototype_pooling,
            prototype_distance=args.prototype_distance,
            logreg_c=args.logreg_c,
            trust_remote_code=args.trust_remote_code,
            **extra,
        )

    model = load(model_path, max_length=adaptation.max_length, **adaptation.config_changes())
    return model, load(baseline_path) if baseline_path else None


def _write(results, values: dict, argv, output_file, plot) -> None:
    """The result file says how to reproduce itself: every flag and the command line."""
    from ..evaluation import plot_accuracy, write_results

    settings = {k: v for k, v in values.items() if v is not None}
    command = shlex.join(["fewshot-nlp", "evaluate", *argv])
    for row in results:
        row["settings"], row["command"] = settings, command
    if output_file:
        print(f"results: {write_results(results, output_file)}")
    if plot:
        print(f"plot: {plot_accuracy(results, plot)}")
