"""Callbacks of a meta-run through transformers' ``CallbackHandler``, as setfit's Trainer
uses it: ``TrainerCallback`` objects (or classes), and plain objects with some ``on_*``
methods."""

from __future__ import annotations

from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler


def callback_handler(callbacks, model, tokenizer, optimizer, scheduler) -> CallbackHandler:
    """transformers' ``CallbackHandler`` (as setfit's Trainer uses it). Its flow defaults
    (``DefaultFlowCallback``) read ``TrainingArguments`` fields a meta-run does not have: the
    run steers logging, evaluation and saving itself, so the handler's notice about them is
    silenced."""
    from transformers.utils import logging as hf_logging

    log = hf_logging.get_logger("transformers.trainer_callback")
    level = log.level
    log.setLevel(hf_logging.ERROR)
    try:
        handler = CallbackHandler([], model, tokenizer, optimizer, scheduler)
    finally:
        log.setLevel(level)
    for callback in callbacks or []:
        handler.add_callback(as_trainer_callback(callback))
    return handler


def as_trainer_callback(callback):
    """A ``TrainerCallback`` (or its class) as is; any other object as one whose events are
    the ``on_*`` methods it defines."""
    if isinstance(callback, (TrainerCallback, type)):
        return callback
    adapter = TrainerCallback()
    for event in dir(TrainerCallback):
        if event.startswith("on_") and callable(getattr(callback, event, None)):
            setattr(adapter, event, getattr(callback, event))
    return adapter
