"""`fewshot-nlp adapt`: adapt a run (or grow an export) and export the classifier."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .common import check_push, model_folder, parse_with_adaptation, resolve_model_path

DESCRIPTION = (
    "Adapt a (meta-trained) model to a few labelled examples and export it; with --model an "
    "exported classifier, add labels (--train_file) or drop them (--remove_labels)."
)


def main(argv: list[str]) -> int:
    from ..unlabeled.arguments import UnlabeledArguments
    from .arguments import AdaptArguments

    args, adaptation, unlabeled = parse_with_adaptation(
        AdaptArguments, argv, "adapt", DESCRIPTION, wings=(UnlabeledArguments,)
    )
    path, grows = _check_request(args, adaptation)
    multi_label = _multi_label_request(args, adaptation, path, grows)
    _check_pool_request(unlabeled, adaptation, args, grows, multi_label)

    from transformers import AutoTokenizer

    from ..classifier.record import AdaptationRecord
    from ..export import export

    # the tokenizer here, the model once, by adapt or grow
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
    if multi_label is not None:
        adapted = _multi_label_classifier(args, multi_label, path, tokenizer, grows)
    elif unlabeled.unlabeled_data is not None:
        adapted = _classifier_with_pool(args, adaptation, unlabeled, path, tokenizer)
    else:
        adapted = _classifier(args, adaptation, path, tokenizer, grows)
    out = export(
        adapted,
        tokenizer,
        args.output_dir,
        overwrite=args.overwrite,
        keep_adapter=args.keep_adapter,
        push_to_hub=args.push_to_hub and not args.onnx,  # with --onnx, once it is written
        hub_model_id=args.hub_model_id,
        private=args.private,
    )
    if args.onnx:
        from ..deploy import OnnxArguments, export_onnx
        from ..hub import push_folder_to_hub

        onnx = export_onnx(out, OnnxArguments(quantize="int8"))
        print(f"ONNX written to {onnx}: model.onnx, model_quantized.onnx")
        if args.push_to_hub:
            push_folder_to_hub(out, args.hub_model_id, private=args.private)
    labels = list(adapted.config.id2label.values())
    record = AdaptationRecord.of(adapted)
    if record.rejection:
        print(rejection_summary(record.rejection))
        labels = labels[:-1]
    if record.multi_label:
        print(multi_label_summary(record.multi_label, len(labels), out))
        return 0
    if record.unlabeled:
        print(pool_summary(record.unlabeled))
    print(f"Adapted to {len(labels)} classes; exported to {out}")
    return 0


def _check_pool_request(unlabeled, adaptation, args, grows: bool, multi_label) -> None:
    """An unlabeled pool is checked with the rest of the request, before anything loads."""
    if unlabeled.episode_pool:
        raise ConfigError(
            "--episode_pool draws a pool per episode in `fewshot-nlp evaluate`; adapt reads "
            "one pool: --unlabeled_file FILE."
        )
    if unlabeled.unlabeled_data is None:
        return
    if grows or multi_label is not None:
        kind = "growing an export" if grows else "multi-label adaptation"
        raise ConfigError(
            f"--unlabeled_file is read by single-label adaptation of a meta-trained model (or "
            f"checkpoint), not by {kind}. Drop --unlabeled_file."
        )
    if args.keep_adapter:
        raise ConfigError(
            "--unlabeled_file refits the head on merged weights; --keep-adapter keeps the "
            "LoRA adapter apart. Drop one of them."
        )
    from ..unlabeled.adaptation import check_request
    from ..unlabeled.pool import check_pool_file

    check_request(adaptation, args.text_pair_column)
    check_pool_file(unlabeled.unlabeled_data)


def _classifier_with_pool(args, adaptation, unlabeled, path: str, tokenizer):
    from ..unlabeled import adapt_with_unlabeled

    return adapt_with_unlabeled(
        path,
        args.train_file or None,
        None,
        adaptation,
        unlabeled,
        labels=args.labels,
        tokenizer=tokenizer,
        trust_remote_code=args.trust_remote_code,
        text_column=args.text_column,
        label_column=args.label_column,
    )


def pool_summary(record: dict) -> str:
    """What the unlabeled pool did, in one line."""
    pool, check = record["pool"], record["check"]
    line = f"Unlabeled pool: {pool['texts']} texts"
    if check and check["accuracy_with"] is not None:
        line += (
            f"; {check['folds']}-fold held-out accuracy {100 * check['accuracy_without']:.1f} "
            f"without it, {100 * check['accuracy_with']:.1f} with it"
        )
    elif check:
        line += f"; not checked ({check['reason']})"
    if record["used"]:
        return line + f": used ({record['pseudo_labelled']} texts pseudo-labelled)."
    if check and check["accuracy_with"] is not None:
        if check["accuracy_without"] < check["min_accuracy"]:
            share = 100 * check["min_accuracy"]
            why = f"below {share:.0f} without it, its pseudo-labels are too noisy"
        else:
            why = "it lowered the held-out accuracy"
        return line + f": not used ({why}; --pool_rule always uses it)."
    return line + ": not used (--pool_rule always uses it)."


def _classifier(args, adaptation, path: str, tokenizer, grows: bool):
    """The export grown, or the model adapted, as the command asked."""
    from ..classifier import adapt, grow

    reading = dict(text_column=args.text_column, label_column=args.label_column)
    reading.update(text_pair_column=args.text_pair_column)
    if grows:
        return grow(
            path,
            args.train_file or None,
            remove_labels=args.remove_labels,
            trust_remote_code=args.trust_remote_code,
            **reading,
        )
    return adapt(
        path,
        args.train_file or None,
        adaptation,
        labels=args.labels,
        tokenizer=tokenizer,
        merge_lora=not args.keep_adapter,
        trust_remote_code=args.trust_remote_code,
        **reading,
    )


def _multi_label_request(args, adaptation, path: str, grows: bool):
    """``MultiLabelArguments`` when the training files are multi-label (rows with
    ``--labels_column`` lists, or a CSV with ``--label_separator``) or the export that grows
    is, else None; settings that mean nothing there are refused before anything loads."""
    from ..multilabel import MultiLabelArguments, is_multilabel_file
    from ..multilabel.growth import is_multilabel_export

    detected = is_multilabel_file(args.train_file, args.labels_column, args.label_separator)
    exported = grows and is_multilabel_export(path)
    if grows and detected != exported and args.train_file:
        kind = "multi-label" if exported else "single-label"
        raise ConfigError(
            f"--model is a {kind} export and --train_file is not {kind}: a growth adds examples "
            f"of its own kind ({'rows with a labels list' if exported else 'one label per row'})."
        )
    if not (args.multi_label or detected or exported):
        return None
    if exported:
        return MultiLabelArguments()  # a growth refits with the export's recorded settings
    if adaptation.unknown_label:
        raise ConfigError(
            "--unknown_label is for single-label classifiers: in a multi-label one a text of "
            "none of the labels already gets no label (every sigmoid < 0.5). To teach it such "
            'texts, give them in --train_file with an empty list: {"text": ..., "labels": []}.'
        )
    ignored = [
        f"--{k}" for k, v in vars(adaptation).items() if v is not None and k not in MULTI_LABEL
    ]
    if ignored or args.keep_adapter:
        shown = sorted(ignored + ["--keep-adapter"] * args.keep_adapter)
        raise ConfigError(
            f"{shown} apply to single-label adaptation; multi-label adaptation fits one "
            "logistic regression per label on the model's sentence embeddings (settings: "
            "--label_names always|never, --max_length, --multilabel_threshold)."
        )
    return MultiLabelArguments(
        label_names=adaptation.label_names or "always",
        max_length=adaptation.max_length,
        threshold=args.multilabel_threshold,
    )


MULTI_LABEL = ("label_names", "max_length")  # the AdaptationArguments multi-label reads


def _multi_label_classifier(args, multi_label, path: str, tokenizer, grows: bool):
    from ..multilabel import adapt_multilabel, read_multilabel
    from ..multilabel.growth import grow_multilabel

    reading = dict(text_column=args.text_column, labels_column=args.labels_column)
    reading.update(label_column=args.label_column, label_separator=args.label_separator)
    if grows:
        data = None
        if args.train_file:
            data = read_multilabel(args.train_file, minimum=1, **reading)
        return grow_multilabel(
            path,
            data,
            remove_labels=args.remove_labels,
            trust_remote_code=args.trust_remote_code,
        )
    data = read_multilabel(args.train_file, labels=args.labels, **reading)
    return adapt_multilabel(
        path,
        data,
        multi_label,
        tokenizer=tokenizer,
        trust_remote_code=args.trust_remote_code,
    )


def multi_label_summary(record: dict, labels: int, out) -> str:
    """What the multi-label adaptation did, in two lines."""
    line = f"Adapted to {labels} labels (multi-label: each on at sigmoid >= 0.5"
    line += ", thresholds by k-fold)" if record["threshold"] == "kfold" else ")"
    held = record.get("held_out")
    if held:
        line += (
            f"; held-out over the shots ({held['folds']} folds): micro-F1 "
            f"{100 * held['micro_f1']:.1f}, macro-F1 {100 * held['macro_f1']:.1f}, exact match "
            f"{100 * held['exact_match']:.1f}"
        )
    return line + f".\nExported to {out}"


def _check_request(args, adaptation) -> tuple[str, bool]:
    """Every flag and path checked before anything loads: the model folder, and whether it
    is an export that grows."""
    from ..classifier.class_memory import is_exported_classifier
    from ..meta.saving import read_meta_info
    from ..paths import check_output_dir

    path = resolve_model_path(args.model)
    check_output_dir(args.output_dir, overwrite=args.overwrite, reads=[path], reserve=True)
    path = model_folder(path, args.trust_remote_code)
    if adaptation.unknown_data and not Path(adaptation.unknown_data).is_file():
        raise ConfigError(f"--unknown_file {adaptation.unknown_data}: no such file.")
    if args.push_to_hub:
        check_push(args.hub_model_id)
    if args.onnx and args.keep_adapter:
        raise ConfigError(
            "--onnx needs one set of weights; --keep-adapter keeps the LoRA adapter apart. "
            "Drop one of them."
        )
    grows = is_exported_classifier(path)
    if grows:
        given = (
            [f"--{k}" for k, v in vars(adaptation).items() if v is not None]
            + ["--labels"] * (args.labels is not None)
            + ["--keep-adapter"] * args.keep_adapter
        )
        if given:
            raise ConfigError(
                f"{path} is an exported classifier: adapting it adds --train_file's labels (and "
                f"drops --remove_labels) on its stored features, with the settings it was "
                f"fitted with; {sorted(set(given))} apply to adapting a meta-trained model."
            )
    elif args.remove_labels:
        raise ConfigError(
            "--remove_labels drops labels of an exported classifier; --model is not one. Adapt "
            "the meta-trained model to exactly the labels you want instead."
        )
    if args.keep_adapter and not (read_meta_info(path) or {}).get("lora"):
        raise ConfigError(
            f"--keep-adapter needs a LoRA meta-trained run (adapt_scope: lora, saved without "
            f"merge_lora_on_save); {path} holds no adapter. Drop --keep-adapter to export "
            "full weights."
        )
    return path, grows


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
