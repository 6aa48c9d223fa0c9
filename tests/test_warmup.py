import pytest
import torch

from fewshot_nlp import TaskSource
from fewshot_nlp.meta.maml import MAML
from fewshot_nlp.meta.saving import load_meta_model
from fewshot_nlp.meta.trainer import MetaTrainer
from fewshot_nlp.meta.warmup import (
    FeatureWarmupConfig,
    mean_pooled,
    pooler_projection,
    warm_up_features,
)

from .conftest import tiny_meta_args, tiny_model


@pytest.fixture(scope="module")
def texts(data_dir):
    return TaskSource.from_data_dir("trec", data_dir, split="test").texts


def feature_gap(model, tokenizer, texts):
    """MSE between the head's input and the original model's mean-pooled embedding."""
    probe = MAML(model)
    batch = dict(
        tokenizer(texts[:64], padding=True, truncation=True, max_length=16, return_tensors="pt")
    )
    with torch.no_grad():
        return torch.nn.functional.mse_loss(
            probe.features({}, batch), mean_pooled(ORIGINAL.base_model, batch)
        ).item()


def test_projection_lookup():
    assert pooler_projection(tiny_model("bert")) is not None
    assert pooler_projection(tiny_model("roberta")) is not None
    assert pooler_projection(tiny_model("distilbert")) is None


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_warmup_brings_head_features_to_mean_pooling(tokenizer, texts, family):
    global ORIGINAL
    ORIGINAL = tiny_model(family).eval()
    before = feature_gap(tiny_model(family), tokenizer, texts)
    fit_only = tiny_model(family)
    config = FeatureWarmupConfig(steps=0, fit_examples=400, max_length=16)
    warm_up_features(fit_only, tokenizer, texts, config, progress=False)
    after_fit = feature_gap(fit_only, tokenizer, texts)
    assert after_fit < 0.5 * before  # the closed-form pooler fit
    model = tiny_model(family)
    config = FeatureWarmupConfig(steps=60, learning_rate=3e-4, fit_examples=400, max_length=16)
    metrics = warm_up_features(model, tokenizer, texts, config, progress=False)
    # Never worse than the fit. Both branches happen (seeded): BERT's distillation improves
    # on the fit; RoBERTa's does not, and its fitted weights are put back.
    if family == "bert":
        assert not metrics.get("restored")
        assert metrics["distilled_gap"] < 0.95 * metrics["fitted_gap"]
    else:
        assert metrics["restored"] and metrics["distilled_gap"] > metrics["fitted_gap"]
        assert feature_gap(model, tokenizer, texts) == pytest.approx(after_fit, rel=1e-3)
    assert feature_gap(model, tokenizer, texts) <= after_fit * 1.02


def test_lora_run_with_warmup_saves_and_reloads_its_base(tokenizer, data_dir, tmp_path):
    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(
        tmp_path / "run", max_steps=2, adapt_scope="lora", feature_warmup_steps=3, save_steps=2
    )
    from fewshot_nlp import default_lora_config

    lora = default_lora_config(r=2, target_modules=["query", "value"])
    trainer = MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer, lora_config=lora)
    assert trainer.warmup_metrics["steps"] == 3
    trainer.train()
    assert (tmp_path / "run" / "warmed_base" / "model.safetensors").is_file()
    model, _, config, info = load_meta_model(tmp_path / "run")
    assert config.adapt_scope == "lora" and info["feature_warmup"]["steps"] == 3
    batch = dict(tokenizer(["what is the capital of peru"], return_tensors="pt"))
    trainer.maml.eval()
    model.eval()
    with torch.no_grad():
        a = MAML(model, config).features({}, batch)
        b = trainer.maml.features({}, batch)
    torch.testing.assert_close(a, b)
    resumed = MetaTrainer(
        tiny_model(),
        tiny_meta_args(
            tmp_path / "run",
            max_steps=2,
            adapt_scope="lora",
            feature_warmup_steps=3,
            resume_from_checkpoint="true",
        ),
        sources,
        tokenizer=tokenizer,
        lora_config=lora,
    )
    assert resumed.warmup_metrics is None  # loaded, not warmed again
    with torch.no_grad():
        base = {n: p for n, p in resumed.model.named_parameters() if "lora_" not in n}
        for n, p in trainer.model.named_parameters():
            if "lora_" not in n:
                assert torch.equal(p, base[n]), n


def test_diverging_distillation_keeps_the_fitted_weights(tokenizer, texts):
    model = tiny_model()
    with pytest.warns(UserWarning, match="kept the weights from before it"):
        metrics = warm_up_features(
            model,
            tokenizer,
            texts,
            FeatureWarmupConfig(steps=20, learning_rate=1e-1, fit_examples=400, max_length=16),
            progress=False,
        )
    assert metrics["restored"]
    fit_only = tiny_model()
    warm_up_features(
        fit_only,
        tokenizer,
        texts,
        FeatureWarmupConfig(steps=0, fit_examples=400, max_length=16),
        progress=False,
    )
    for (name, a), b in zip(model.named_parameters(), fit_only.parameters()):
        assert torch.equal(a, b), name


def test_lora_meta_model_merged_on_request(tokenizer, data_dir, tmp_path):
    from fewshot_nlp import default_lora_config

    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(
        tmp_path / "run", max_steps=1, adapt_scope="lora", merge_lora_on_save=True
    )
    lora = default_lora_config(r=2, target_modules=["query", "value"])
    lora.init_lora_weights = False
    trainer = MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer, lora_config=lora)
    trainer.train()
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()
    model, _, config, info = load_meta_model(tmp_path / "run")
    assert not info["lora"] and config.adapt_scope == "head"
    batch = dict(tokenizer(["how far is the moon"], return_tensors="pt"))
    trainer.maml.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            MAML(model, config).features({}, batch),
            trainer.maml.features({}, batch),
            atol=1e-5,
            rtol=1e-5,
        )
