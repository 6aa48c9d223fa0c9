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


def hub_model_id(name: str | None) -> str | None:
    """The Hub id of a base model, for a card; a local folder's path is never published.

    The packaged all-MiniLM-L6-v2 is named by its Hub id; other local folders (and the bare
    folder names the adaptation record keeps of them) are left out: only ``org/name``.
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
    if path.is_absolute() or path.exists() or name.count("/") != 1:
        return None
    return name
