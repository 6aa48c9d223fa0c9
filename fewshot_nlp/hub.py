"""Uploading a written folder to the Hub: one commit, the token never printed or saved."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, FewShotError


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str | None,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    replace: dict[str, bytes] | None = None,
) -> str:
    """Upload ``folder`` in one commit; ``replace`` swaps in other contents for some files.

    The token comes from the usual places and is never printed or written.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    token = check_push_to_hub(repo_id, token=token)
    api = HfApi(token=token, endpoint=endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id=repo_id,
            repo_type="model",
            operations=_commit_operations(Path(folder), replace or {}, CommitOperationAdd),
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


def check_push_to_hub(repo_id: str | None, *, token: str | None = None) -> str:
    """Everything a push needs, checked before the work it would upload: a valid repo id, the
    Hub not switched off, a token. Returns the token (never printed or written)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import get_token, validate_repo_id

    if not repo_id:
        raise ConfigError("push_to_hub needs hub_model_id (e.g. --hub_model_id user/name).")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ConfigError(
            f"--hub_model_id {repo_id!r} is not a valid repository id ({error}). Use "
            "user/name with letters, digits, '-', '_' and '.'."
        ) from None
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            f"Cannot push to {repo_id}: the Hub is switched off (HF_HUB_OFFLINE is set). Unset "
            "HF_HUB_OFFLINE to push, or drop --push_to_hub. Nothing was done."
        )
    token = token or get_token()
    if not token:
        raise ConfigError(
            "No Hub token found: set HF_TOKEN or run `hf auth login`, then retry. "
            "Nothing was uploaded."
        )
    return token


def _commit_operations(folder: Path, replace: dict[str, bytes], add) -> list:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [
        add(
            path_in_repo=path.relative_to(folder).as_posix(),
            path_or_fileobj=replace.get(path.relative_to(folder).as_posix(), str(path)),
        )
        for path in files
    ]


def model_card(
    model,
    *,
    eval_results: dict | None = None,
    datasets: list[str] | None = None,
    keep_adapter: bool = False,
    class_memory=None,
) -> str:
    """README.md with YAML metadata, written from what the adaptation recorded."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    record = getattr(model, "fewshot_nlp_adaptation", {}) or {}
    meta_training = record.get("meta_training") or {}
    base = hub_model_id(record.get("base_encoder") or record.get("base_model"))
    sources = [s["name"] for s in meta_training.get("sources", [])]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    results = [
        EvalResult(
            task_type="text-classification",
            dataset_type="text-classification",
            dataset_name=str((eval_results or {}).get("dataset", "held-out")),
            metric_type=key,
            metric_value=float(value),
        )
        for key, value in (eval_results or {}).items()
        if key != "dataset"
    ]
    card_data = ModelCardData(
        library_name="peft" if keep_adapter else "transformers",
        pipeline_tag="text-classification",
        tags=["fewshot-nlp", "maml", "few-shot", "text-classification"]
        + (["lora", "peft"] if keep_adapter else []),
        base_model=base,
        datasets=list(datasets or sources) or None,
        model_name="fewshot-nlp adapted classifier" if results else None,
        eval_results=results or None,
    )
    lines = ["# Few-shot classifier (fewshot-nlp)", ""]
    lines += _origin_lines(record, meta_training, sources)
    lines += ["Labels: " + ", ".join(f"`{x}`" for x in labels), ""]
    if class_memory is not None:
        lines += _class_memory_lines(class_memory)
    lines += _use_lines(keep_adapter)
    if eval_results:
        lines += ["## Evaluation", ""] + [f"- {k}: {v}" for k, v in eval_results.items()] + [""]
    template = "---\n{{ card_data }}\n---\n\n{{ body }}"
    card = ModelCard.from_template(card_data, template_str=template, body="\n".join(lines))
    return str(card)


def _origin_lines(record: dict, meta_training: dict, sources: list[str]) -> list[str]:
    """Where the classifier comes from: meta-training, adaptation (or growth), label names,
    0-shot classes, rejection."""
    lines: list[str] = []
    if meta_training:
        lines += [
            f"Meta-trained with MAML for {meta_training.get('steps')} steps "
            f"({meta_training.get('n_way')}-way {meta_training.get('k_shot')}-shot episodes, "
            f"meta-batch {meta_training.get('meta_batch_size')}) on: {', '.join(sources)}.",
            "",
        ]
    elif not record.get("grown_from"):
        lines += ["Not meta-trained: adapted directly from the base checkpoint.", ""]
    if record.get("grown_from"):
        lines += _growth_lines(record)
    elif record:
        lines += [
            f"Adapted to {record.get('classes')} classes from {record.get('examples')} "
            f"labelled examples: {record.get('inner_steps')} inner step(s) at learning rate "
            f"{record.get('inner_learning_rate')}, scope `{record.get('adapt_scope')}`, "
            f"head init `{record.get('head_init')}`.",
            "",
        ]
        if record.get("cv_accuracy"):
            scores = ", ".join(f"{k}: {v:.3f}" for k, v in record["cv_accuracy"].items())
            lines += [
                f"The inner steps were chosen by cross-validation on the support set among "
                f"{record.get('step_candidates')} (held-out support accuracy {scores}).",
                "",
            ]
        if record.get("label_names_used") and not record.get("zero_shot_classes"):
            lines += [
                "Each label's name was used as one more example of its class (the names alone "
                "classified the training examples clearly above chance).",
                "",
            ]
        if record.get("cv_fallback"):
            lines += [f"Cross-validation fell back: {record['cv_fallback']}.", ""]
        if record.get("zero_shot_classes"):
            zero = record["zero_shot_classes"]
            lines += [
                f"{len(zero)} class(es) had no examples and are classified from their label "
                f"names alone (0-shot): {', '.join(f'`{x}`' for x in zero[:10])}"
                + (" ..." if len(zero) > 10 else "")
                + ".",
                "",
            ]
        if record.get("zero_shot_note"):
            lines += [f"Note: {record['zero_shot_note']}", ""]
    if record.get("rejection"):
        lines += _rejection_lines(record["rejection"])
    return lines


def _use_lines(keep_adapter: bool) -> list[str]:
    """How to load it: plain transformers, and peft for a kept adapter."""
    lines = ["## Use", ""]
    if keep_adapter:
        lines += [
            "The LoRA adapter is kept unmerged: `adapter_config.json` and "
            "`adapter_model.safetensors` hold it (with the classification head), beside the "
            "base weights it applies to. The adapter's `base_model_name_or_path` is this "
            "folder (its absolute path when exported, the repo id once pushed).",
            "",
            "```python",
            "from peft import AutoPeftModelForSequenceClassification",
            "",
            'model = AutoPeftModelForSequenceClassification.from_pretrained("PATH_OR_REPO")',
            "```",
            "",
            "Plain transformers finds the adapter too (after moving the folder, use this):",
            "",
        ]
    lines += [
        "```python",
        "from transformers import pipeline",
        "",
        'classifier = pipeline("text-classification", model="PATH_OR_REPO")',
        'classifier("your text here")',
        "```",
        "",
    ]
    return lines


def _growth_lines(record: dict) -> list[str]:
    def named(values):
        return ", ".join(f"`{v}`" for v in values) or "none"

    return [
        f"Grown from `{record['grown_from']}` without its training texts: added "
        f"{named(record['added_labels'])}; removed {named(record['removed_labels'])}; more "
        f"examples for {named(record['more_examples'])}. The head (`{record['head_init']}`) "
        f"was refitted on the stored features of {record['examples']} examples"
        + (" and the label names" if record.get("label_names_used") else "")
        + "; the encoder is the exported one, unchanged.",
        "",
    ]


def _class_memory_lines(memory) -> list[str]:
    """What `fewshot_nlp_classes.safetensors` holds and what it is for."""
    rows = len(memory.labels)
    names = int(memory.is_name.sum())
    return [
        "## Adding and removing labels",
        "",
        f"`fewshot_nlp_classes.safetensors` keeps the head's input features of the {rows - names} "
        "training examples"
        + (f" and {names} label names" if names else "")
        + f" ({memory.features.shape[-1]} floats each), read by this folder's encoder, with "
        "their labels and weights and how the head was fitted. With it, "
        "`fewshot-nlp adapt --model THIS_FOLDER --train_file new.jsonl --output_dir grown` "
        "adds labels (or examples of existing ones) and `--remove_labels` drops some, "
        "without the old texts. Plain transformers ignores the file.",
        "",
    ]


def _rejection_lines(rejection: dict) -> list[str]:
    """How the "none of these" label was set, and what it is expected to do."""
    label = rejection["label"]
    lines = [
        "## Out-of-scope rejection",
        "",
        f"The last label, `{label}`, is predicted when no class fits: its logit is a threshold "
        f"({rejection['threshold']:.4f}), so a text gets `{label}` exactly when every class "
        "scores below it (the same alone and in padded batches). The class scores are "
        f"calibrated by a temperature of {rejection['temperature']:.4f}.",
        "",
    ]
    if rejection.get("fallback"):
        return lines + [f"Fallback: {rejection['fallback']}.", ""]
    how = (
        f"chosen on the {rejection['unknown_examples']} out-of-scope examples given with the "
        "training data against the held-out training examples (the threshold that maximises "
        "held-out in-scope accuracy plus out-of-scope recall"
        if rejection["rule"] == "out-of-scope examples"
        else "chosen on the training examples alone (the highest threshold that rejects at "
        f"most {rejection['max_in_scope_loss']} points of held-out in-scope accuracy"
    )
    if rejection["rule"] == "out-of-scope examples" and rejection.get("max_in_scope_loss"):
        how += f", losing at most {rejection['max_in_scope_loss']} points"
    lines += [
        f"The threshold was {how}), by {rejection['folds']}-fold cross-validation over the "
        "shots. Expected from that cross-validation:",
        "",
        f"- in-scope accuracy: {100 * rejection['in_scope_accuracy']:.1f} % without rejection, "
        f"{100 * rejection['in_scope_accuracy_with_rejection']:.1f} % with it;",
    ]
    if rejection.get("unknown_recall") is not None:
        lines.append(f"- out-of-scope recall: {100 * rejection['unknown_recall']:.1f} %;")
    lines += [
        f"- expected calibration error of the top score: "
        f"{rejection['calibration_error_before']:.3f} before the temperature, "
        f"{rejection['calibration_error_after']:.3f} after.",
        "",
        "Held-out heads saw fewer examples than the final one, so these figures lean low "
        "for in-scope accuracy and the threshold leans lenient.",
        "",
    ]
    return lines


def hub_model_id(name: str | None) -> str | None:
    """The Hub id of a base model, for a card; a local folder's path is never published.

    The packaged all-MiniLM-L6-v2 is named by its Hub id; other local folders are left out.
    """
    if not name:
        return None
    from .modeling.pretrained import PACKAGED_HUB_ID, resolve_model_path

    try:
        packaged = str(Path(resolve_model_path("minilm")).resolve())
    except Exception:  # the package is optional
        packaged = None
    path = Path(name)
    if packaged and path.exists() and str(path.resolve()) == packaged:
        return PACKAGED_HUB_ID
    if path.is_absolute() or path.exists() or name.count("/") > 1:
        return None
    return name


def _validation_lines(validation: dict | None) -> list[str]:
    """The meta-value on validation classes, and the curve it comes from."""
    if not validation:
        return []
    lines = [
        "## Validation",
        "",
        f"Held-out classes of {', '.join(validation['sources'])}, {validation['n_way']}-way, "
        f"{validation['k_shots']} shots, {validation['episodes']} episodes per shot count; "
        f"query accuracy after this model's own adaptation. Best: "
        f"{validation['best']:.4f} at step {validation['best_step']}.",
        "",
    ]
    if validation.get("meta_value") is not None:
        lines += [
            f"Step 0 (the encoder before meta-training, adapted the same way): "
            f"{validation['step_0']:.4f}, so meta-training added "
            f"{100 * validation['meta_value']:+.2f} points (the meta-value).",
            "",
        ]
    keys = [k for k in validation["curve"][0] if k != "step"]
    lines += [
        "| step | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
        *(
            f"| {h['step']} | " + " | ".join(f"{h[k]:.4f}" for k in keys) + " |"
            for h in validation["curve"]
        ),
        "",
    ]
    return lines


def meta_model_card(info: dict) -> str:
    """README.md of a meta-trained run, from what the run recorded (``fewshot_nlp.json``)."""
    from huggingface_hub import ModelCard, ModelCardData

    training = info.get("meta_training") or {}
    sources = training.get("sources", [])
    card_data = ModelCardData(
        library_name="transformers",
        tags=["fewshot-nlp", "maml", "meta-learning", "few-shot"],
        base_model=hub_model_id(info.get("base_encoder")),
        datasets=[s["name"] for s in sources] or None,
    )
    maml = info.get("maml") or {}
    adapt_head = maml.get("adapt_head_init") or maml.get("head_init")
    lines = [
        "# Meta-trained few-shot encoder (fewshot-nlp)",
        "",
        f"{training.get('steps')} meta-steps of "
        f"{'first' if maml.get('first_order', True) else 'second'}-order MAML "
        f"(scope `{maml.get('adapt_scope')}`, {maml.get('inner_steps')} inner step(s), head "
        f"`{maml.get('head_init')}`; adapted with head `{adapt_head}`) on "
        f"{training.get('n_way')}-way {training.get('k_shot')}-shot episodes, meta-batch "
        f"{training.get('meta_batch_size')}, meta learning rate {training.get('learning_rate')}.",
        "",
        "| source | examples | classes | sampling probability |",
        "|---|---|---|---|",
        *(
            f"| {s['name']} | {s['examples']} | {s['classes']} | {s['probability']:.3f} |"
            for s in sources
        ),
        "",
    ]
    lines += _validation_lines(info.get("validation"))
    lines += [
        "This folder is not a classifier yet: give it a few labelled examples of your classes.",
        "",
        "```python",
        "from fewshot_nlp import adapt, export",
        "",
        'clf = adapt("PATH_OR_REPO", [("where is my card?", "card_arrival"), ...])',
        'export(clf, tokenizer, "my-classifier")  # then pipeline("text-classification", ...)',
        "```",
        "",
    ]
    template = "---\n{{ card_data }}\n---\n\n{{ body }}"
    return str(ModelCard.from_template(card_data, template_str=template, body="\n".join(lines)))
