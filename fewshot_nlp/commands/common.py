"""What several commands check first: the model folder, pushing to the Hub."""

from __future__ import annotations

TRUST_REMOTE_CODE = (
    "Run model code shipped in the model folder (config.json auto_map). Off: such a model is "
    "refused before anything runs."
)


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


def model_with_outputs(args, outputs: dict[str, str | None]) -> str:
    """``--model``'s folder, once the output files (``{flag: path}``) are claimed: checked
    before anything loads, none of them inside the model."""
    from ..paths import check_output_file

    path = resolve_model_path(args.model)
    for flag, value in outputs.items():
        if value:
            check_output_file(
                value, flag=flag, overwrite=args.overwrite, reads=[path], reserve=True
            )
    return model_folder(path, args.trust_remote_code)


def parse_with_adaptation(
    arguments, argv: list[str], command: str, description: str, wings: tuple = ()
):
    """``(the command's arguments, AdaptationArguments, *wings)`` from the flags (and
    ``--config``); ``wings``: the option dataclasses of the wings the command reads."""
    from ..argument_parsing import parse_dataclasses
    from ..classifier.arguments import AdaptationArguments

    return parse_dataclasses(
        (arguments, AdaptationArguments, *wings),
        argv,
        prog=f"fewshot-nlp {command}",
        description=description,
    )


def check_push(repo_id: str | None) -> None:
    """A push that cannot happen is found before the work, not after it."""
    from ..hub import check_push_to_hub

    check_push_to_hub(repo_id)
