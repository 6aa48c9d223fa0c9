"""An exported classifier as ONNX, beside its weights: ``onnx/model.onnx`` (fp32, dynamic
batch and sequence axes, checked by ``onnx.checker`` and against the PyTorch logits) and,
with ``quantize="int8"``, ``onnx/model_quantized.onnx`` (onnxruntime's dynamic quantizer).
The model card records the opset, the files and the checks."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from ..errors import ConfigError, ModelError
from ..paths import (
    atomic_file,
    atomic_folder_write,
    foreign_entries,
    record_written,
    written_entries,
)
from .arguments import FILES, ONNX_DIR, OnnxArguments

PROBES = (  # texts of several lengths: each alone and in one padded batch
    "ok",
    "where is my card?",
    "I was charged twice for the same purchase and I cannot log in to my account",
    "play some jazz and tell me the weather in paris tomorrow morning, then book a table",
)
START, END = "<!-- onnx:start -->", "<!-- onnx:end -->"


def export_onnx(
    path: str | os.PathLike, args: OnnxArguments | None = None, *, quantize: str | None = None
) -> Path:
    """Write ``path/onnx/`` for the classifier exported at ``path``; returns that folder."""
    args = args or OnnxArguments(quantize=quantize)
    folder = Path(path)
    check_onnx_request(folder, args)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    report: dict = {"opset": args.opset}

    def write(tmp: Path) -> None:
        report.update(_write_fp32(model, tokenizer, tmp / FILES["fp32"], args))
        if args.quantize:
            report.update(_write_int8(model, tokenizer, tmp, report["inputs"]))

    out = atomic_folder_write(folder / ONNX_DIR, write)
    record_written(folder, [ONNX_DIR])
    for name, file in FILES.items():
        if (out / file).is_file():
            report[f"{name}_megabytes"] = (out / file).stat().st_size / 2**20
    report["weights_megabytes"] = _weights_size(folder)
    _write_card_section(folder, report)
    return out


def check_onnx_request(folder: Path, args: OnnxArguments) -> None:
    """The folder is a merged classifier export, and an ``onnx/`` in it may be replaced."""
    if not (folder / "config.json").is_file():
        raise ConfigError(f"--model {folder}: no config.json; give an exported classifier folder.")
    if (folder / "fewshot_nlp.json").is_file():
        raise ConfigError(
            f"--model {folder} is a meta-trained run: adapt it first (fewshot-nlp adapt), then "
            "export the classifier to ONNX."
        )
    if (folder / "adapter_config.json").is_file():
        raise ConfigError(
            f"--model {folder} holds an unmerged LoRA adapter: ONNX needs one set of weights. "
            "Export the classifier merged (fewshot-nlp adapt without --keep-adapter), then "
            "export that folder to ONNX."
        )
    target = folder / ONNX_DIR
    if target.exists():
        foreign = foreign_entries(target) if target.is_dir() else [target.name]
        if ONNX_DIR not in written_entries(folder) or foreign:
            raise ConfigError(
                f"{target} exists and fewshot-nlp did not write it (or all of it: "
                f"{', '.join(foreign[:3]) or 'no record'}): move it away first."
            )
        if not args.overwrite:
            raise ConfigError(f"{target} exists: pass --overwrite to write it again.")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--model {folder} is not writable: the ONNX files go inside it.")


def _export(model, inputs: dict, file: Path, opset: int) -> None:
    import torch

    names = list(inputs)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["logits"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
        torch.onnx.export(
            model,
            (),
            str(file),
            kwargs=inputs,
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


def _inputs(model, tokenizer, texts, padding: bool) -> dict:
    """The tokenizer's tensors, in the order of ``model.forward``'s parameters: the traced
    graph's inputs come in that order, whatever the names given (a swapped attention mask
    and token types would otherwise go unnoticed by name)."""
    import inspect

    encoded = tokenizer(list(texts), padding=padding, return_tensors="pt")
    order = inspect.signature(model.forward).parameters
    return {k: encoded[k] for k in order if k in encoded and k in tokenizer.model_input_names}


def _write_fp32(model, tokenizer, file: Path, args: OnnxArguments) -> dict:
    import onnx
    import torch

    inputs = _inputs(model, tokenizer, PROBES[:2], padding=True)
    _export(model, inputs, file, args.opset)
    onnx.checker.check_model(str(file))
    session = _session(file)
    worst = 0.0
    batches = [_inputs(model, tokenizer, [t], padding=False) for t in PROBES]
    batches.append(_inputs(model, tokenizer, PROBES, padding=True))
    for batch in batches:
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
        got = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        worst = max(worst, float(abs(got - expected).max()))
    if worst > args.atol:
        raise ModelError(
            f"The ONNX graph's logits differ from the PyTorch model's by {worst:.2e} (> "
            f"{args.atol}) on probe texts: nothing was written. Try another --opset."
        )
    return {"inputs": list(inputs), "checker": "passed", "fp32_max_abs_diff": worst}


def _write_int8(model, tokenizer, folder: Path, names: list[str]) -> dict:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = folder / FILES["fp32"], folder / FILES["int8"]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice on pre-processing, on the root logger
    try:
        # per-channel weights: 97.7 % of banking77's train texts keep fp32's label against
        # 94.9 % per tensor, at the same size (BENCHMARKS "ONNX")
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    onnx.checker.check_model(str(target))
    fp32, int8 = _session(source), _session(target)
    same = 0
    for text in PROBES:
        feed = {k: v.numpy() for k, v in _inputs(model, tokenizer, [text], padding=False).items()}
        same += int(fp32.run(None, feed)[0].argmax() == int8.run(None, feed)[0].argmax())
    return {"int8_same_label_on_probes": f"{same}/{len(PROBES)}"}


def _session(file: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])


def _weights_size(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20


def _write_card_section(folder: Path, report: dict) -> None:
    """The card's ONNX section (replaced when the ONNX files are written again)."""
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    lines = [
        START,
        "## ONNX",
        "",
        f"`onnx/model.onnx`: the same classifier as an ONNX graph (opset {report['opset']}, "
        f"inputs {', '.join(report['inputs'])}, dynamic batch and sequence axes; "
        f"{report['fp32_megabytes']:.1f} MB against {report['weights_megabytes']:.1f} MB of "
        f"safetensors). `onnx.checker` passed; its logits match the PyTorch model's within "
        f"{report['fp32_max_abs_diff']:.1e} on probe texts, alone and in a padded batch.",
    ]
    if "int8_megabytes" in report:
        lines += [
            "",
            f"`onnx/model_quantized.onnx`: dynamic int8 weights (onnxruntime's quantizer), "
            f"{report['int8_megabytes']:.1f} MB; the same label as fp32 on "
            f"{report['int8_same_label_on_probes']} probe texts.",
        ]
    lines += [
        "",
        "The folder is at once a transformers checkpoint, an Optimum-layout ONNX model "
        '(`subfolder="onnx"`) and a transformers.js model: '
        "`pipeline('text-classification', 'PATH')` in JavaScript, or "
        "`fewshot-nlp predict --onnx fp32 --model PATH` without torch.",
        END,
    ]
    section = "\n".join(lines)
    if START in text and END in text:
        text = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    with atomic_file(card) as handle:
        handle.write(text)


__all__ = ["export_onnx"]
