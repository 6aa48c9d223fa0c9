"""The CUDA path, checked where a GPU is present (``pytest -m gpu``; skipped on a machine
without one, so CI never needs it): meta-gradients on the device equal the CPU's, bf16
autocast stays close to fp32, and a meta-training run on the GPU saves a run that adapts.
Timings on a GPU: ``scripts/bench/maml_speed.py --device cuda``."""

import copy

import pytest
import torch

from fewshot_nlp import MAML, MAMLConfig, TaskSource, apply_lora, default_lora_config

from .conftest import tiny_meta_args, tiny_model
from .test_maml import make_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SECOND = dict(first_order=False, inner_steps=3)
VARIANTS = {
    "fo-full-1": dict(first_order=True, inner_steps=1),
    "so-full-1": dict(first_order=False, inner_steps=1),
    "so-full-3": SECOND,
    "so-full-3-lr": dict(SECOND, learn_inner_lr="layer"),
    "so-full-3-ckpt": dict(SECOND, gradient_checkpointing=True),
    "so-full-3-stepckpt": dict(SECOND, step_checkpointing=True),
    "fo-lora-3": dict(first_order=True, inner_steps=3, adapt_scope="lora"),
    "so-lora-3": dict(SECOND, adapt_scope="lora"),
}


def meta_gradients(model, config: dict, batches, device, autocast=None, lr=0.1) -> dict:
    """The meta-gradient of one meta-step (no optimizer step), as float64 on the CPU."""
    maml = MAML(model, MAMLConfig(inner_learning_rate=lr, **config))
    maml.to(device=device, dtype=next(model.parameters()).dtype)  # learned rates too
    maml.train()
    for batch in batches:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = maml(batch.to(device)).loss
        loss.backward()
    return {
        n: p.grad.detach().double().cpu() for n, p in maml.named_parameters() if p.grad is not None
    }


def with_lora(model, config: dict, random_b: bool = True):
    if config.get("adapt_scope") != "lora":
        return model
    lora = default_lora_config(r=4, target_modules=["query", "value", "dense"])
    lora.init_lora_weights = not random_b  # random B: every LoRA weight gets a gradient
    return apply_lora(model, lora)


def relative_error(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    scale = max(v.abs().max().item() for v in b.values())
    return max((a[k] - b[k]).abs().max().item() for k in a) / scale


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_device_meta_gradient_equals_the_cpus(variant, tokenizer):
    config = VARIANTS[variant]
    batches = [make_batch(tokenizer, seed=seed) for seed in (0, 1)]
    cpu_model = with_lora(tiny_model("bert", num_labels=3, dtype=torch.float64), config)
    gpu_model = copy.deepcopy(cpu_model)
    expected = meta_gradients(cpu_model, config, batches, torch.device("cpu"))
    got = meta_gradients(gpu_model, config, batches, torch.device("cuda"))
    assert any(g.abs().sum() > 0 for g in got.values())
    assert relative_error(got, expected) < 1e-9


def test_second_order_differs_from_first_order_on_the_device(tokenizer):
    batches = [make_batch(tokenizer, seed=0)]
    device = torch.device("cuda")
    first = meta_gradients(tiny_model(dtype=torch.float64), VARIANTS["fo-full-1"], batches, device)
    second = meta_gradients(tiny_model(dtype=torch.float64), VARIANTS["so-full-1"], batches, device)
    assert relative_error(second, first) > 1e-4


@pytest.mark.parametrize("scope", ["full", "lora"])
def test_bf16_meta_gradient_points_where_the_fp32_one_does(scope, minilm_path, tokenizer):
    from transformers import AutoModelForSequenceClassification

    config = dict(SECOND, adapt_scope=scope)
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm_path, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model = with_lora(model, config, random_b=False)
    batches = [make_batch(tokenizer, seed=seed) for seed in (0, 1)]
    lr = 0.01 if scope == "full" else 0.05
    device = torch.device("cuda")
    fp32 = meta_gradients(copy.deepcopy(model), config, batches, device, lr=lr)
    bf16 = meta_gradients(model, config, batches, device, torch.bfloat16, lr=lr)
    assert all(torch.isfinite(v).all() for v in bf16.values())
    flat = [torch.cat([g[k].flatten() for k in sorted(g)]) for g in (bf16, fp32)]
    assert torch.nn.functional.cosine_similarity(*flat, dim=0) > 0.95


def test_bf16_second_order_run_on_the_gpu_saves_a_run_that_adapts(tmp_path, data_dir, tokenizer):
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.meta.trainer import MetaTrainer

    sources = [TaskSource.from_data_dir("trec", data_dir, split="test")]
    args = tiny_meta_args(
        tmp_path / "run",
        use_cpu=False,
        mixed_precision="bf16",
        first_order=False,
        inner_steps=3,
        max_steps=4,
    )
    trainer = MetaTrainer(tiny_model(), args, sources, tokenizer=tokenizer)
    assert trainer.accelerator.device.type == "cuda"
    before = {n: p.detach().cpu().clone() for n, p in trainer.maml.named_parameters()}
    trainer.train()
    moved = [n for n, p in trainer.maml.named_parameters() if not torch.equal(before[n], p.cpu())]
    assert moved
    texts, labels = sources[0].texts[:40], sources[0].labels[:40]
    classifier = adapt(str(tmp_path / "run"), list(zip(texts, labels)))
    assert set(classifier.config.id2label.values()) == set(labels)
