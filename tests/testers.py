"""Shared checks run over model family x adapt_scope (as peft's ``PeftCommonTester`` is over
its model ids): a new family or scope gets every check by joining the parameter lists."""

from __future__ import annotations

import copy

import torch

from fewshot_nlp import (
    MAML,
    AdaptationArguments,
    FewShotModel,
    MAMLConfig,
    adapt,
    apply_lora,
    default_lora_config,
)
from fewshot_nlp.export import export
from fewshot_nlp.meta.maml import HEAD_BIAS, HEAD_WEIGHT

from .conftest import tiny_model
from .test_maml import make_batch, our_meta_grads, reference_meta_grads

FAMILIES = ["bert", "bert-mean", "roberta", "distilbert", "electra", "deberta-v2"]
SCOPES = ["full", "lora", "head", "top:1"]
FEW_SHOT = [
    ("book a flight to paris", "travel"),
    ("find a cheap hotel", "travel"),
    ("what is my balance", "money"),
    ("transfer money to tom", "money"),
    ("play some jazz music", "music"),
    ("put on a rock song", "music"),
]
QUERIES = ["a train to rome", "how much is in my account", "some classical music please"]


class FewShotCommonTester:
    """``_test_*`` checks; the test module parametrizes ``family`` and ``scope``."""

    def build(self, family: str, scope: str, base_dir=None, **config) -> MAML:
        model = tiny_model(family, dtype=torch.float64)
        if scope == "lora":
            if base_dir is not None:  # a LoRA run is saved as an adapter on a base on disk
                model.save_pretrained(base_dir)
            lora = default_lora_config(r=2)
            lora.init_lora_weights = False  # B = 0 would hide the LoRA paths
            model = apply_lora(model, lora)
            if base_dir is not None:
                model.peft_config["default"].base_model_name_or_path = str(base_dir)
        settings = dict(inner_steps=2, inner_learning_rate=0.3, first_order=False)
        return MAML(model, MAMLConfig(adapt_scope=scope, **{**settings, **config})).double()

    @staticmethod
    def tokenizer_for(family: str, tokenizer):
        """DistilBERT and the mean-pooling class take no token_type_ids."""
        if family in ("distilbert", "bert-mean"):
            tokenizer = copy.deepcopy(tokenizer)
            tokenizer.model_input_names = ["input_ids", "attention_mask"]
        return tokenizer

    def _test_meta_gradient_matches_reference(self, family, scope, tokenizer):
        maml = self.build(family, scope)
        batch = make_batch(self.tokenizer_for(family, tokenizer))
        ours, out = our_meta_grads(maml, batch)
        ref, ref_loss = reference_meta_grads(maml, batch, 2, 0.3, False)
        assert torch.isfinite(out.loss)
        assert any(g.abs().sum() > 0 for g in ours)
        # XLM (bert-mean) takes the attention softmax in float32, even in a float64 model.
        tol = 1e-4 if family == "bert-mean" else 1e-6
        torch.testing.assert_close(out.loss, ref_loss, atol=tol, rtol=tol)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, atol=tol, rtol=tol)

    def _test_adapt_export_round_trip(self, family, scope, tokenizer, tmp_path, inner_steps=1):
        """The export, loaded by plain transformers, scores as the adapted run did."""
        from transformers import AutoModelForSequenceClassification

        tokenizer = self.tokenizer_for(family, tokenizer)
        run = FewShotModel(self.build(family, scope, inner_steps=inner_steps), tokenizer)
        before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
        texts = [t for t, _ in FEW_SHOT]
        labels = [["travel", "money", "music"].index(y) for _, y in FEW_SHOT]
        fast, _ = run.adapt_weights(texts, labels, 3)
        if inner_steps == 0:  # the encoder is unchanged: the queries read its frozen features
            assert set(fast) == {HEAD_WEIGHT, HEAD_BIAS}
        expected = run.episode_logits(texts, labels, 3, QUERIES, label_names=None)
        classifier = adapt(run, FEW_SHOT, AdaptationArguments(label_names="never"))
        folder = export(classifier, tokenizer, tmp_path / "clf")
        loaded = AutoModelForSequenceClassification.from_pretrained(folder).double().eval()
        assert loaded.config.id2label == {0: "travel", 1: "money", 2: "music"}
        with torch.no_grad():
            for query, row in zip(QUERIES, expected):  # one at a time, as the pipeline does
                logits = loaded(**tokenizer([query], return_tensors="pt")).logits[0]
                torch.testing.assert_close(logits, row, atol=1e-6, rtol=1e-6)
        for name, p in run.model.named_parameters():  # the run itself is never changed
            assert torch.equal(p, before[name]), name

    def _test_save_load_round_trip(self, family, scope, tokenizer, tmp_path):
        """save_pretrained then from_pretrained: the same adaptation, the same predictions."""
        tokenizer = self.tokenizer_for(family, tokenizer)
        maml = self.build(family, scope, base_dir=tmp_path / "base", inner_steps=1)
        run = FewShotModel(maml, tokenizer)
        run.save_pretrained(tmp_path / "run")
        loaded = FewShotModel.from_pretrained(tmp_path / "run", torch_dtype=torch.float64)
        assert loaded.maml.fast_names == run.maml.fast_names
        assert loaded.config.adapt_scope == scope
        texts = [t for t, _ in FEW_SHOT]
        labels = [["travel", "money", "music"].index(y) for _, y in FEW_SHOT]
        torch.testing.assert_close(
            loaded.episode_logits(texts, labels, 3, QUERIES),
            run.episode_logits(texts, labels, 3, QUERIES),
            atol=1e-6,
            rtol=1e-6,
        )
