"""Write an adapted classifier as a Hub-format folder that plain transformers loads."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError, FewShotError
from .meta.saving import atomic_folder_write


def model_card(
    model, *, eval_results: dict | None = None, datasets: list[str] | None = None
) -> str:
    """README.md with YAML metadata, written from what the adaptation recorded."""
    record = getattr(model, "fewshot_nlp_adaptation", {}) or {}
    meta_training = record.get("meta_training") or {}
    base = record.get("base_model") or getattr(model.config, "_name_or_path", None)
    sources = [s["name"] for s in meta_training.get("sources", [])]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["fewshot-nlp", "maml", "few-shot", "text-classification"],
    }
    if base:
        metadata["base_model"] = str(base)
    if datasets or sources:
        metadata["datasets"] = list(datasets or sources)
    if eval_results:
        metadata["model-index"] = [
            {
                "name": "fewshot-nlp adapted classifier",
                "results": [
                    {
                        "task": {"type": "text-classification"},
                        "dataset": {
                            "name": eval_results.get("dataset", "held-out"),
                            "type": "text-classification",
                        },
                        "metrics": [
                            {"type": k, "value": float(v)}
                            for k, v in eval_results.items()
                            if k != "dataset"
                        ],
                    }
                ],
            }
        ]
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        "# Few-shot classifier (fewshot-nlp)",
        "",
    ]
    if meta_training:
        lines += [
            f"Meta-trained with MAML for {meta_training.get('steps')} steps "
            f"({meta_training.get('n_way')}-way {meta_training.get('k_shot')}-shot episodes, "
            f"meta-batch {meta_training.get('meta_batch_size')}) on: {', '.join(sources)}.",
            "",
        ]
    else:
        lines += ["Not meta-trained: adapted directly from the base checkpoint.", ""]
    if record:
        lines += [
            f"Adapted to {record.get('classes')} classes from {record.get('examples')} "
            f"labelled examples: {record.get('inner_steps')} inner step(s) at learning rate "
            f"{record.get('inner_learning_rate')}, scope `{record.get('adapt_scope')}`, "
            f"head init `{record.get('head_init')}`.",
            "",
        ]
    lines += [
        "Labels: " + ", ".join(f"`{x}`" for x in labels),
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        'classifier = pipeline("text-classification", model="PATH_OR_REPO")',
        'classifier("your text here")',
        "```",
        "",
    ]
    if eval_results:
        lines += ["## Evaluation", ""] + [f"- {k}: {v}" for k, v in eval_results.items()] + [""]
    return "\n".join(lines)


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
) -> Path:
    """``save_pretrained`` (safetensors) + tokenizer + model card, written atomically.

    LoRA models are exported merged (``adapt`` merges by default): an adapter folder would
    miss the adapted head and point at a base with another label set.
    """
    if hasattr(model, "peft_config"):
        raise ConfigError(
            "export() got an unmerged PEFT model: call adapt(..., merge_lora=True) (the default) "
            "or model.merge_and_unload() first, so the export loads with plain transformers."
        )
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"{output_dir} exists and is not empty: pass overwrite=True "
            "(CLI: --overwrite) or choose another output_dir."
        )
    card = model_card(model, eval_results=eval_results)

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")

    try:
        atomic_folder_write(output_dir, write)
    except OSError as error:
        raise FewShotError(
            f"Could not write {output_dir}: {error}. Nothing was left half-written."
        ) from error
    if push_to_hub:
        push_folder_to_hub(
            output_dir, hub_model_id, private=private, token=token, endpoint=endpoint
        )
    return output_dir


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str | None,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload ``folder`` with huggingface_hub; the token is never printed or written."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    from huggingface_hub.utils import get_token

    if not repo_id:
        raise ConfigError("push_to_hub needs hub_model_id (e.g. --hub_model_id user/name).")
    token = token or get_token()
    if not token:
        raise ConfigError(
            "No Hub token found: set HF_TOKEN or run `hf auth login`, then retry. "
            "Nothing was uploaded."
        )
    api = HfApi(token=token, endpoint=endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message="Upload few-shot classifier (fewshot-nlp)",
        )
    except OfflineModeIsEnabled:
        raise FewShotError(
            f"Cannot push {folder} to {repo_id}: HF_HUB_OFFLINE is set. Unset it to push. "
            "Nothing was uploaded."
        ) from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        hint = (
            " The token is missing, invalid or lacks write access." if status in (401, 403) else ""
        )
        raise FewShotError(
            f"Push of {folder} to {repo_id} failed (HTTP {status}).{hint} "
            "The upload did not complete."
        ) from None
    return str(getattr(info, "commit_url", info))
