"""pooling='mean': the head reads the sentence embedding, in a class plain transformers serves."""

import json

import pytest
import torch

from fewshot_nlp import TaskSource
from fewshot_nlp.classifier import adapt
from fewshot_nlp.errors import ModelError
from fewshot_nlp.export import export
from fewshot_nlp.meta.maml import MAML
from fewshot_nlp.meta.trainer import MetaTrainer
from fewshot_nlp.modeling.pooling import mean_pooled, mean_pooling_classifier

from .conftest import tiny_meta_args, tiny_model

TEXTS = ["my card has not arrived yet, what should I do", "what is the weather", "hi"]


def masked_mean(bert_classifier, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return mean_pooled(bert_classifier.base_model, batch)


def test_minilm_mean_pooling_is_exact(minilm_path):
    """The converted model's head input is MiniLM's sentence embedding (padding included)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bert = AutoModelForSequenceClassification.from_pretrained(minilm_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    expected = masked_mean(bert, tokenizer, TEXTS)
    model, tokenizer = mean_pooling_classifier(bert, tokenizer)
    assert type(model).__name__ == "XLMForSequenceClassification"
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["attention_mask"].sum(1).tolist()[-1] < batch["attention_mask"].shape[1]
    maml = MAML(model.eval())
    with torch.no_grad():
        feats = maml.features(dict(model.named_parameters()), dict(batch))
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-5)


def test_tiny_conversion_keeps_labels_and_drops_token_types(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    bert = tiny_model("bert", num_labels=3, intermediate_size=64).eval()
    bert.config.id2label = {0: "a", 1: "b", 2: "c"}
    bert.config.label2id = {"a": 0, "b": 1, "c": 2}
    expected = masked_mean(bert, tokenizer, TEXTS)
    model, converted_tokenizer = mean_pooling_classifier(
        bert, tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    )
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}
    batch = converted_tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        feats = MAML(model.eval()).features(dict(model.named_parameters()), dict(batch))
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-5)
    converted_tokenizer.save_pretrained(tmp_path)
    assert "token_type_ids" not in AutoTokenizer.from_pretrained(tmp_path)("a text")


@pytest.mark.parametrize(
    "family,overrides,match",
    [
        ("roberta", {}, "converts BERT checkpoints"),
        ("bert", {"intermediate_size": 32}, "intermediate_size = 4 x hidden_size"),
        ("bert", {"intermediate_size": 64, "hidden_act": "relu"}, "GELU"),
    ],
)
def test_unsupported_models_are_clear_errors(family, overrides, match):
    with pytest.raises(ModelError, match=match):
        mean_pooling_classifier(tiny_model(family, **overrides))


def test_lora_and_top_layers_find_the_mean_pooling_layers():
    from fewshot_nlp import apply_lora
    from fewshot_nlp.meta.config import MAMLConfig

    top = MAML(tiny_model("bert-mean", num_hidden_layers=3), MAMLConfig(adapt_scope="top:1"))
    assert top.fast_names and all(".2." in n for n in top.fast_names), top.fast_names
    lora = MAML(apply_lora(tiny_model("bert-mean")), MAMLConfig(adapt_scope="lora"))
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora.fast_names}
    assert wrapped == {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"}
    assert not any("summary" in n for n in lora.fast_names)


@pytest.fixture(scope="module")
def mean_lora_run(tmp_path_factory, tokenizer, data_dir):
    """An unmerged LoRA run on a mean-pooling model: its base must be kept in the run."""
    from fewshot_nlp import default_lora_config

    out = tmp_path_factory.mktemp("mean") / "run"
    bert = tiny_model("bert", intermediate_size=64)
    bert.config._name_or_path = "some/bert-checkpoint"  # a name that would load plain BERT
    model, tok = mean_pooling_classifier(
        bert, tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    )
    args = tiny_meta_args(out, max_steps=2, adapt_scope="lora", head_init="cosine")
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    MetaTrainer(model, args, sources, tokenizer=tok, lora_config=default_lora_config(r=2)).train()
    return out


def test_mean_pooling_run_adapts_and_exports_for_pipeline(mean_lora_run, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    info = json.loads((mean_lora_run / "fewshot_nlp.json").read_text())
    assert info["base_encoder"] == "some/bert-checkpoint"  # what the baselines load
    assert (mean_lora_run / "base_model" / "config.json").is_file()
    train = [(f"example {i} of topic {c} words", f"topic_{c}") for c in range(3) for i in range(3)]
    model = adapt(str(mean_lora_run), train, adapt_head_init="logreg")
    tokenizer = AutoTokenizer.from_pretrained(mean_lora_run)
    out = export(model, tokenizer, tmp_path / "clf")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["XLMForSequenceClassification"]
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    texts = [t for t, _ in train] + ["topic 2", "a longer text about topic 1 and more words"]
    with torch.no_grad():
        ours = torch.stack(
            [model.eval()(**tokenizer(t, return_tensors="pt")).logits[0] for t in texts]
        )
        padded = loaded(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    # One text at a time (the pipeline's default) the export gives our logits; padded in a
    # batch, a mean-pooling head's logits shrink by length / padded length: same argmax.
    classify = pipeline("text-classification", model=str(out), top_k=None)
    for text, row in zip(texts, ours):
        scores = {r["label"]: r["score"] for r in classify([text])[0]}
        expected = row.softmax(-1)
        got = torch.tensor([scores[model.config.id2label[i]] for i in range(3)])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(padded.argmax(-1), ours.argmax(-1))
