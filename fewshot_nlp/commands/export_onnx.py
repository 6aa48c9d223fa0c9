"""`fewshot-nlp export-onnx`: write an exported classifier's ONNX files into its folder."""

from __future__ import annotations

from dataclasses import dataclass

from ..argument_parsing import help_field
from .common import TRUST_REMOTE_CODE, model_folder, resolve_model_path

DESCRIPTION = (
    "Write onnx/model.onnx (and, with --quantize int8, onnx/model_quantized.onnx) into an "
    "exported classifier's folder: onnxruntime, Optimum and transformers.js then load it."
)


@dataclass
class ExportOnnxArguments:
    model: str = help_field("An exported classifier folder (fewshot-nlp adapt's output).")
    trust_remote_code: bool = help_field(TRUST_REMOTE_CODE, default=False)


def main(argv: list[str]) -> int:
    from ..argument_parsing import parse_dataclasses
    from ..deploy.arguments import OnnxArguments

    args, options = parse_dataclasses(
        (ExportOnnxArguments, OnnxArguments),
        argv,
        prog="fewshot-nlp export-onnx",
        description=DESCRIPTION,
    )
    folder = model_folder(resolve_model_path(args.model), args.trust_remote_code)
    from pathlib import Path

    from ..deploy.export import check_onnx_request, export_onnx

    check_onnx_request(Path(folder), options)
    out = export_onnx(folder, options)
    written = ", ".join(sorted(p.name for p in out.glob("*.onnx")))
    print(f"ONNX written to {out}: {written} (checks in {Path(folder) / 'README.md'})")
    return 0
