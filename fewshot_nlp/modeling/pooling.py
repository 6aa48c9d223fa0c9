"""Mean pooling in a standard transformers class, so the head reads the sentence embedding.

Sentence encoders such as all-MiniLM-L6-v2 are trained so that the mean of the last hidden
states is the sentence embedding; ``BertForSequenceClassification`` feeds its head the
``[CLS]`` pooler instead, which loses 0.4–4 points of few-shot accuracy even after a
warm-up (BENCHMARKS.md). transformers has no BERT class with mean pooling, but
``XLMForSequenceClassification`` is the same post-LayerNorm encoder (GELU, learned
absolute positions) with a ``summary_type="mean"`` head, and it zeroes padded positions
after every layer. A BERT checkpoint maps onto it weight for weight:

* the head reads ``sum(hidden[mask]) / padded_length``: the masked mean times a positive
  per-example factor. Heads on L2-normalised features (cosine, ridge, logreg, all
  bias-free) give exactly the same predictions, and ``MAML.features`` rescales to the
  masked mean for the others;
* BERT's segment embedding of segment 0 is folded into the position embeddings, and the
  tokenizer stops returning ``token_type_ids`` (XLM would add them as word embeddings).

The result is saved, loaded and served by plain transformers (``pipeline`` included).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError

POOLINGS = ("model", "mean")
MODEL_INPUT_NAMES = ["input_ids", "attention_mask"]


def is_mean_pooling(model: nn.Module) -> bool:
    """Whether the head of ``model`` reads an unmasked mean over (zeroed) padded positions."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "xlm" and (
        getattr(config, "summary_type", None) == "mean"
    )


def mean_pooling_classifier(model: nn.Module, tokenizer=None):
    """``(XLMForSequenceClassification, tokenizer)`` computing what a BERT ``model`` computes,
    with the head on the mean of the last hidden states instead of the ``[CLS]`` pooler.

    The head keeps the label set of ``model``; its weights start from ``model``'s classifier
    (the pooler is dropped: nothing reads it). ``tokenizer`` is changed in place to return
    only ``input_ids`` and ``attention_mask``.
    """
    from transformers import XLMForSequenceClassification

    if is_mean_pooling(model):
        return model, _without_token_types(tokenizer)
    config = model.config
    if config.model_type != "bert":
        raise ModelError(
            f"pooling='mean' converts BERT checkpoints; {config._name_or_path or 'this model'} "
            f"is {config.model_type!r}. Use pooling='model' (the head the class defines)."
        )
    if config.hidden_act != "gelu" or config.intermediate_size != 4 * config.hidden_size:
        raise ModelError(
            "pooling='mean' needs a BERT with GELU and intermediate_size = 4 x hidden_size "
            f"(got {config.hidden_act!r}, {config.intermediate_size} vs {config.hidden_size}). "
            "Use pooling='model'."
        )
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        raise ModelError("pooling='mean' needs absolute position embeddings; use pooling='model'.")
    xlm_config = _xlm_config(config)
    xlm_config._name_or_path = config._name_or_path
    converted = XLMForSequenceClassification(xlm_config)
    missing = _load_bert_weights(converted, model)
    if missing:
        raise ModelError(f"pooling='mean': BERT weights not found for {sorted(missing)[:5]}.")
    converted.to(next(model.parameters()).device)
    converted.train(model.training)
    return converted, _without_token_types(tokenizer)


def _xlm_config(config):
    """The XLM configuration that computes what a BERT ``config`` computes, mean-pooled."""
    from transformers import XLMConfig

    dropout = config.classifier_dropout
    return XLMConfig(
        vocab_size=config.vocab_size,
        emb_dim=config.hidden_size,
        n_layers=config.num_hidden_layers,
        n_heads=config.num_attention_heads,
        dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob,
        gelu_activation=True,
        sinusoidal_embeddings=False,
        causal=False,
        asm=False,
        n_langs=1,
        use_lang_emb=False,
        max_position_embeddings=config.max_position_embeddings,
        layer_norm_eps=config.layer_norm_eps,
        pad_index=config.pad_token_id,
        pad_token_id=config.pad_token_id,
        summary_type="mean",
        summary_use_proj=True,
        summary_activation=None,
        summary_proj_to_labels=True,
        summary_first_dropout=config.hidden_dropout_prob if dropout is None else dropout,
        id2label=dict(config.id2label),
        label2id=dict(config.label2id),
        problem_type=config.problem_type,
    )


def _load_bert_weights(target: nn.Module, bert_classifier: nn.Module) -> set[str]:
    import torch

    source = {k: v.detach() for k, v in bert_classifier.state_dict().items()}
    prefix = bert_classifier.base_model_prefix + "."
    bert = {k.removeprefix(prefix): v for k, v in source.items()}
    emb = "embeddings."
    mapped = {
        "transformer.embeddings.weight": bert[emb + "word_embeddings.weight"],
        # BERT adds the segment-0 embedding to every token: fold it into the positions.
        "transformer.position_embeddings.weight": bert[emb + "position_embeddings.weight"]
        + bert[emb + "token_type_embeddings.weight"][0],
        "transformer.layer_norm_emb.weight": bert[emb + "LayerNorm.weight"],
        "transformer.layer_norm_emb.bias": bert[emb + "LayerNorm.bias"],
        "sequence_summary.summary.weight": source["classifier.weight"],
        "sequence_summary.summary.bias": source["classifier.bias"],
    }
    parts = {
        "attention.self.query": "attentions.{}.q_lin",
        "attention.self.key": "attentions.{}.k_lin",
        "attention.self.value": "attentions.{}.v_lin",
        "attention.output.dense": "attentions.{}.out_lin",
        "attention.output.LayerNorm": "layer_norm1.{}",
        "intermediate.dense": "ffns.{}.lin1",
        "output.dense": "ffns.{}.lin2",
        "output.LayerNorm": "layer_norm2.{}",
    }
    for i in range(target.config.n_layers):
        for bert_name, xlm_name in parts.items():
            for kind in ("weight", "bias"):
                key = f"encoder.layer.{i}.{bert_name}.{kind}"
                mapped[f"transformer.{xlm_name.format(i)}.{kind}"] = bert[key]
    expected = set(target.state_dict())
    with torch.no_grad():
        target.load_state_dict(mapped, strict=False)
    return expected - set(mapped)


def _without_token_types(tokenizer):
    if tokenizer is not None:
        tokenizer.model_input_names = list(MODEL_INPUT_NAMES)
        tokenizer.init_kwargs["model_input_names"] = list(MODEL_INPUT_NAMES)
    return tokenizer


def mean_pooled(encoder, inputs: dict) -> torch.Tensor:
    """The mean of ``encoder``'s last hidden states over the real tokens: the sentence
    embedding (all-MiniLM-L6-v2's) that ``pooling="mean"`` puts the head on."""
    hidden = encoder(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
