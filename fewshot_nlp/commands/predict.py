"""`fewshot-nlp predict`: classify texts with an exported classifier (plain transformers
``pipeline`` underneath), to the console or to a JSON-lines file."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..argument_parsing import help_field
from ..errors import ConfigError
from .common import TRUST_REMOTE_CODE, model_with_outputs


@dataclass
class PredictArguments:
    model: str = help_field("An exported classifier folder.")
    top_k: int = help_field("Labels kept per text.", default=3)
    input_file: str | None = help_field(".txt (one per line), .jsonl, .csv.", default=None)
    text_column: str = help_field("Text field of .jsonl/.csv.", default="text")
    output_file: str | None = help_field("Write JSON lines here.", default=None)
    overwrite: bool = help_field("Replace an existing output_file.", default=False)
    batch_size: int = help_field("Texts per forward pass.", default=32)
    onnx: Literal["fp32", "int8"] | None = help_field(
        "Run the folder's ONNX model (onnx/model.onnx, or model_quantized.onnx for int8) with "
        "onnxruntime and the tokenizer alone, no torch (write it with export-onnx).",
        default=None,
    )
    trust_remote_code: bool = help_field(TRUST_REMOTE_CODE, default=False)


def main(argv: list[str]) -> int:
    from ..argument_parsing import parse_dataclasses

    args, texts = parse_dataclasses(
        (PredictArguments,),
        argv,
        prog="fewshot-nlp predict",
        description="Top labels of texts given on the command line or in a file (with "
        "--input_file the predictions go to --output_file as JSON lines, or to stdout).",
        positional="Texts to classify.",
    )

    from ..paths import atomic_file

    model, texts = _predict_request(args, texts)

    out = Path(args.output_file) if args.output_file else None
    with atomic_file(out) if out else contextlib.nullcontext() as sink:
        predictions, too_long, limit, multi_label = _classify(args, model, texts, out is not None)
        for text, scores in zip(texts, predictions):
            if multi_label:
                record, shown = _multi_label_output(text, scores)
            else:
                top = scores[: args.top_k]
                shown = ", ".join(f"{p['label']} ({p['score']:.3f})" for p in top)
                record = {"text": text, "label": top[0]["label"], "score": top[0]["score"]}
                record["top_k"] = top
            if sink is None:
                print(f"{text!r}: {shown}")
            else:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    if out is not None:  # renamed into place only now: a finished file or none
        print(f"{len(texts)} predictions written to {out}")
    if too_long:
        print(
            f"note: {too_long} of {len(texts)} texts are longer than the model's {limit} "
            "tokens; they were truncated to their first tokens.",
            file=sys.stderr,
        )
    return 0


def _classify(args, model: str, texts: list[str], progress: bool):
    """``(every label's score per text, best first; how many were truncated; the token
    limit; whether the model is multi-label)``, by transformers' pipeline or, with
    ``--onnx``, by onnxruntime and the tokenizer alone (no torch)."""
    if args.onnx:
        from ..deploy.runtime import OnnxClassifier

        runner = OnnxClassifier(model, args.onnx)
        predictions, too_long = runner.predict(texts, args.batch_size, progress=progress)
        return predictions, too_long, runner.limit, runner.multi_label
    from transformers import pipeline

    from ..predict import classify_texts, token_limit

    classifier = pipeline(
        "text-classification", model=model, top_k=None, trust_remote_code=args.trust_remote_code
    )
    multi_label = classifier.model.config.problem_type == "multi_label_classification"
    predictions, too_long = classify_texts(classifier, texts, args.batch_size, progress=progress)
    return predictions, too_long, token_limit(classifier), multi_label


def _multi_label_output(text: str, scores: list[dict]) -> tuple[dict, str]:
    """A multi-label export's line: the labels that are on (sigmoid >= 0.5, possibly none)
    and every label's probability; and what the console shows."""
    on = [p["label"] for p in scores if p["score"] >= 0.5]
    record = {"text": text, "labels": on, "scores": {p["label"]: p["score"] for p in scores}}
    top = ", ".join(f"{p['label']} {p['score']:.3f}" for p in scores[:3])
    return record, f"[{', '.join(on)}] ({top})"


def _predict_request(args, texts: list[str]) -> tuple[str, list[str]]:
    """The model folder and the texts, every flag and path checked before anything loads."""
    from ..data.files import read_texts

    if bool(texts) == bool(args.input_file):
        raise ConfigError("Give the texts either as arguments or with --input_file (one of them).")
    for flag, value in (("--top_k", args.top_k), ("--batch_size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}.")
    model = model_with_outputs(args, {"--output_file": args.output_file})
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
    if (Path(path) / "fewshot_nlp.json").is_file():  # a run's record (meta.saving)
        raise ConfigError(
            f"--model {path} is a meta-trained run, not a classifier: its labels are "
            "placeholders. Adapt it to your classes first: fewshot-nlp adapt --model "
            f"{path} --train_file few.jsonl --output_dir my-classifier, then predict with "
            "--model my-classifier."
        )
