"""What several commands check first: the model folder, pushing to the Hub."""

from __future__ import annotations


def resolve_model_path(name: str) -> str:
    """``minilm`` is the packaged all-MiniLM-L6-v2; anything else is as given."""
    from ..modeling.pretrained import resolve_model_path as resolve

    return resolve(name)


def model_folder(path: str, trust_remote_code: bool, flag: str = "--model") -> str:
    """A model folder that can be loaded (config.json) and whose code, if it ships any, is
    trusted; checked before anything is loaded."""
    from ..paths import check_model_path, check_remote_code

    path = check_model_path(path)
    check_remote_code(path, trust_remote_code, flag=flag)
    return path


def check_push(repo_id: str | None) -> None:
    """A push that cannot happen is found before the work, not after it."""
    from ..hub import check_push_to_hub

    check_push_to_hub(repo_id)
