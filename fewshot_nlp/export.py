"""Write an adapted classifier as a Hub-format folder that plain transformers loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from .classifier.record import AdaptationRecord
from .errors import ConfigError, FewShotError
from .hub import check_push_to_hub, push_folder_to_hub
from .model_card import model_card
from .modeling.head import find_head
from .modeling.lora import is_peft
from .paths import atomic_folder_write, check_output_dir, is_reserved, release_reservations

ADAPTER_CONFIG = "adapter_config.json"
SEQ_CLS_HEADS = ("classifier", "score")  # modules peft always saves whole for SEQ_CLS


def export(
    model,
    tokenizer,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    eval_results: dict | None = None,
    push_to_hub: bool = False,
    hub_model_id: str | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    keep_adapter: bool = False,
) -> Path:
    """``save_pretrained`` (safetensors) + tokenizer + model card, written atomically.

    LoRA models are exported merged by default (``adapt`` merges them). With
    ``keep_adapter=True`` an unmerged LoRA model (``adapt(..., merge_lora=False)``) is written
    as a PEFT adapter folder: the adapter (LoRA + the head in ``modules_to_save``) beside the
    base weights with the new label set, so that both ``AutoPeftModelForSequenceClassification``
    and plain transformers load it with the right labels.
    """
    _check_adapter_request(model, keep_adapter)
    if push_to_hub:  # before anything is written, so a push that cannot happen costs nothing
        token = check_push_to_hub(hub_model_id, token=token)
    # The folder the model was loaded from (a meta-model, say) is never written over.
    source = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    reads = [source] if source and Path(source).is_dir() else []
    memory = None if keep_adapter else getattr(model, "fewshot_nlp_classes", None)
    card = model_card(
        model,
        record=AdaptationRecord.of(model),
        eval_results=eval_results,
        keep_adapter=keep_adapter,
        class_memory=memory,
    )
    reserved_here = not is_reserved(output_dir)
    output_dir = check_output_dir(
        output_dir, overwrite=overwrite, flag="output_dir", reads=reads, reserve=True
    )
    base_reference = str(output_dir.resolve())

    def write(folder: Path) -> None:
        if keep_adapter:
            save_with_adapter(model, folder, base_reference)
        else:
            model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")
        if memory is not None:
            memory.save(folder)

    try:
        atomic_folder_write(output_dir, write)
    except OSError as error:
        raise FewShotError(
            f"Could not write {output_dir}: {error}. Nothing was left half-written."
        ) from error
    finally:
        if reserved_here:
            release_reservations([output_dir])  # a no-op once the export is in place
    if push_to_hub:
        replace = {}
        if keep_adapter and hub_model_id:
            # On the Hub the base is the repo itself, not this machine's folder.
            replace[ADAPTER_CONFIG] = _adapter_config_bytes(output_dir, hub_model_id)
        push_folder_to_hub(
            output_dir,
            hub_model_id,
            private=private,
            token=token,
            endpoint=endpoint,
            replace=replace,
        )
    return output_dir


def _check_adapter_request(model, keep_adapter: bool) -> None:
    if is_peft(model) and not keep_adapter:
        raise ConfigError(
            "export() got an unmerged PEFT model: call adapt(..., merge_lora=True) (the default) "
            "or model.merge_and_unload() first, or pass keep_adapter=True (CLI: --keep-adapter) "
            "to write a PEFT adapter folder."
        )
    if keep_adapter and not is_peft(model):
        raise ConfigError(
            "keep_adapter=True needs an unmerged LoRA model: adapt a LoRA meta-trained run with "
            "adapt(..., merge_lora=False) (CLI: adapt --keep-adapter). This model has no adapter "
            "(a full or head-only run, or a run saved with merge_lora_on_save)."
        )


def save_with_adapter(model, folder: Path, base_reference: str) -> None:
    """Base weights (new labels, LoRA unmerged) + a SEQ_CLS adapter whose base is ``folder``.

    A plain adapter can't work here: the adapted head has the new label set, so the base it
    loads into must have it too; the head also rides in ``modules_to_save``.
    """
    import torch
    from peft import get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapter_name = model.active_adapter
    lora_config = copy.deepcopy(model.peft_config[adapter_name])
    model = copy.deepcopy(model)
    # peft saves the whole head module (e.g. RoBERTa's dense + out_proj) in modules_to_save
    # for SEQ_CLS; LoRA layers inside it are merged into that copy instead.
    head_root = find_head(model).split(".")[0]
    wrapped = {head_root, *SEQ_CLS_HEADS}
    base_prefix = "base_model.model."

    def in_head(name: str) -> bool:
        return name.removeprefix(base_prefix).split(".")[0] in wrapped

    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and in_head(name):
            module.merge()
    trained = {n: p for n, p in model.named_parameters() if "lora_" in n and not in_head(n)}
    base = model.unload()
    base.save_pretrained(folder, safe_serialization=True)
    base.name_or_path = base_reference  # else peft renames the adapter's base after it
    lora_config.task_type = "SEQ_CLS"
    lora_config.modules_to_save = [head_root]
    lora_config.base_model_name_or_path = base_reference
    lora_config.inference_mode = True
    adapter_model = get_peft_model(base, lora_config, adapter_name=adapter_name)
    fresh = {n: p for n, p in adapter_model.named_parameters() if "lora_" in n}
    if fresh.keys() != trained.keys():
        raise FewShotError(
            "Could not carry the LoRA weights into the exported adapter: the layers differ "
            f"({sorted(fresh.keys() ^ trained.keys())[:3]})."
        )
    with torch.no_grad():
        for name, param in fresh.items():
            param.copy_(trained[name])
    config = adapter_model.peft_config[adapter_name]
    config.modules_to_save = list(dict.fromkeys(config.modules_to_save))  # peft adds its own
    # The embeddings are never trained here: don't look for the base (not written yet).
    adapter_model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)


def _adapter_config_bytes(folder: Path, base_reference: str) -> bytes:
    config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_reference
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
