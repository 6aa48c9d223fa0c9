"""The saved meta-model: a Hub-format folder plus ``fewshot_nlp.json`` (how to adapt)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import ModelError
from ..model_card import meta_model_card
from ..modeling.lora import is_peft
from ..paths import readable_as_umask_says
from .config import MAMLConfig

META_FILE = "fewshot_nlp.json"
INNER_LRS_FILE = "inner_lrs.safetensors"
FORMAT_VERSION = 1
BASE_MODEL_DIR = "base_model"  # a LoRA run's starting encoder, when no name can load it


def save_meta_model(
    maml,
    output_dir: str | Path,
    *,
    tokenizer=None,
    info: dict | None = None,
    merge_lora: bool = False,
) -> Path:
    """``save_pretrained`` of the model (LoRA: the adapter, or merged), tokenizer, meta info
    and the model card."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name: p.stat().st_mtime_ns for p in output_dir.iterdir()}
    model = maml.model
    lora = is_peft(model)
    if lora and merge_lora:
        import copy

        model = copy.deepcopy(model).merge_and_unload()
        lora = False
    model.save_pretrained(output_dir, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
    if maml.log_inner_lrs is not None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in maml.log_inner_lrs.items()},
            str(output_dir / INNER_LRS_FILE),
        )
    config = maml.config.to_dict()
    if merge_lora and config["adapt_scope"] == "lora":
        # The LoRA inner learning rate is far too large for full weights: adapt the head only.
        config["adapt_scope"] = "head"
    meta = {
        "format_version": FORMAT_VERSION,
        "maml": config,
        "head_name": maml.head_name,
        "lora": lora,
        **(info or {}),
    }
    (output_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (output_dir / "README.md").write_text(meta_model_card(meta), encoding="utf-8")
    written = [p.name for p in output_dir.iterdir() if before.get(p.name) != p.stat().st_mtime_ns]
    readable_as_umask_says(output_dir, written)
    return output_dir


def read_meta_info(path: str | Path) -> dict | None:
    file = Path(path) / META_FILE
    if not file.is_file():
        return None
    return json.loads(file.read_text(encoding="utf-8"))


def load_model_weights(model, folder: str | Path) -> None:
    """Load saved weights into an existing (possibly PEFT) model, bit-exactly."""
    folder = Path(folder)
    if is_peft(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        raise ModelError(f"No model*.safetensors in {folder}.")
    state = {}
    for file in files:
        state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ModelError(f"{folder} holds weights this model does not have: {unexpected[:5]}.")


def load_inner_lrs(maml, folder: str | Path) -> None:
    file = Path(folder) / INNER_LRS_FILE
    if not file.is_file():
        return
    with torch.no_grad():
        for key, value in load_file(str(file)).items():
            maml.log_inner_lrs[key].copy_(value)


def load_meta_model(path: str | Path, *, trust_remote_code: bool = False, torch_dtype=None):
    """``(model, tokenizer, MAMLConfig | None, info)`` from a meta-trained folder or a checkpoint.

    A plain checkpoint (no ``fewshot_nlp.json``) gives ``MAMLConfig=None``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"Model folder {path} does not exist.")
    info = read_meta_info(path) or {}
    info["path"] = str(path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    kwargs = dict(trust_remote_code=trust_remote_code, attn_implementation="eager")
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if info.get("lora"):
        from peft import PeftConfig, PeftModel

        peft_config = PeftConfig.from_pretrained(path)
        base = AutoModelForSequenceClassification.from_pretrained(
            _resolve_base(path, peft_config.base_model_name_or_path), **kwargs
        )
        model = PeftModel.from_pretrained(base, path, is_trainable=True)
    elif "maml" in info:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    else:  # a plain checkpoint: adaptation replaces its head, whatever the load reports
        from ..modeling.pretrained import replaced_head

        with replaced_head():
            model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    config = MAMLConfig.from_dict(info["maml"]) if "maml" in info else None
    if config is not None and info.get("head_name"):
        config.head_name = info["head_name"]
    return model, tokenizer, config, info


def _resolve_base(path: Path, recorded: str) -> str:
    """The adapter's base; a base kept in the run is found beside it even if it moved."""
    if not recorded:
        raise ModelError(
            f"The LoRA adapter in {path} records no base model (base_model_name_or_path is "
            "empty): set it in adapter_config.json to the folder or id the adapter was made on."
        )
    if Path(recorded).is_dir() or not Path(recorded).is_absolute():
        return recorded
    for candidate in (path / Path(recorded).name, path.parent / Path(recorded).name):
        if candidate.is_dir():
            return str(candidate)
    raise ModelError(f"The LoRA base {recorded} of {path} does not exist; restore that folder.")
