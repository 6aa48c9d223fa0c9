"""MAML meta-gradients against a naive deep-copy reference (float64, tiny models)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot_nlp import (
    MAML,
    ConfigError,
    EpisodeBatch,
    MAMLConfig,
    ModelError,
    TrainingError,
    apply_lora,
    default_lora_config,
)

from .conftest import tiny_model

TEXTS = [
    "book a flight to paris",
    "what is my balance",
    "play some jazz music",
    "cancel my card now",
    "weather in berlin today",
    "transfer money to tom",
    "set an alarm for six",
    "is it raining outside",
    "order a large pizza",
    "reset my password please",
    "find a cheap hotel",
    "how tall is everest",
]


def make_batch(tokenizer, n_way=3, k=2, q=2, seed=0) -> EpisodeBatch:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(TEXTS), generator=g).tolist()
    s_texts = [TEXTS[i] for i in perm[: n_way * k]]
    q_texts = [TEXTS[i] for i in perm[n_way * k : n_way * k + n_way * q]]
    enc = lambda t: dict(tokenizer(t, padding=True, return_tensors="pt"))  # noqa: E731
    return EpisodeBatch(
        support=enc(s_texts),
        support_labels=torch.arange(n_way).repeat(k),
        query=enc(q_texts),
        query_labels=torch.arange(n_way).repeat(q),
        label_names=[f"c{i}" for i in range(n_way)],
        source="toy",
    )


def _assign(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    owner._parameters.pop(attr, None)
    setattr(owner, attr, tensor)


def reference_meta_grads(maml: MAML, batch: EpisodeBatch, steps: int, lr: float, first_order):
    """Explicit MAML: a deep-copied model whose weights are rewritten after each SGD step.

    Normalised heads read L2-normalised features; label names (``batch.names``) are plain
    extra support examples, one per class.
    """
    model = maml.model
    clone = copy.deepcopy(model)
    parent, _, attr = maml.head_name.rpartition(".")
    base_clone = clone.get_base_model() if hasattr(clone, "get_base_model") else clone
    setattr(base_clone.get_submodule(parent) if parent else base_clone, attr, nn.Identity())
    params = dict(model.named_parameters())
    for name in dict(clone.named_parameters()):
        if name in params:
            _assign(clone, name, params[name])
    # The inner loss sees its own copy of the adapted weights (theta * 1): the head init
    # reads the original ones, so inner gradients are partials with the head held fixed.
    fast = {n: params[n] * 1.0 for n in maml.fast_names}

    head_init = maml.config.head_init
    normalised = head_init in ("cosine", "ridge")
    n = batch.n_way
    labels = batch.support_labels
    if batch.names is not None:
        labels = torch.cat([labels, torch.arange(n)])

    def feats(inputs):
        out = clone(**inputs).logits
        if maml.mean_pooling:  # the head input is sum / padded length; we want the mean
            mask = inputs["attention_mask"]
            out = out * mask.shape[1] / mask.sum(1, keepdim=True)
        return F.normalize(out, dim=-1) if normalised else out

    def support_feats():
        out = feats(batch.support)
        return out if batch.names is None else torch.cat([out, feats(batch.names)])

    f = support_feats()  # the head init's forward (theta itself)
    protos = torch.stack([f[labels == c].mean(0) for c in range(n)])
    if head_init == "proto":
        W, b = 2 * protos, -(protos * protos).sum(-1)
    elif head_init == "cosine":
        W = maml.config.logit_scale * F.normalize(protos, dim=-1)
        b = torch.zeros(n, dtype=f.dtype, requires_grad=True)
    elif head_init == "ridge":
        y = F.one_hot(labels, n).to(f.dtype)
        eye = torch.eye(f.shape[1], dtype=f.dtype) / maml.config.head_regularization
        W = maml.config.logit_scale * torch.linalg.solve(f.T @ f + eye, f.T @ y).T
        b = torch.zeros(n, dtype=f.dtype, requires_grad=True)
    else:
        W = torch.zeros(n, f.shape[1], dtype=f.dtype, requires_grad=True)
        b = torch.zeros(n, dtype=f.dtype, requires_grad=True)
    for k, w in fast.items():
        _assign(clone, k, w)
    f = support_feats()  # the inner loss's own forward (theta * 1)
    for _ in range(steps):
        loss = F.cross_entropy(f @ W.T + b, labels)
        names = list(fast)
        grads = torch.autograd.grad(
            loss,
            [fast[k] for k in names] + [W, b],
            create_graph=not first_order,
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        fast = {k: fast[k] - maml.inner_lr(k) * g for k, g in zip(names, grads)}
        W, b = (
            W - maml.inner_lr("head.weight") * grads[-2],
            b - maml.inner_lr("head.bias") * grads[-1],
        )
        for k, w in fast.items():
            _assign(clone, k, w)
        f = support_feats()
    q_loss = F.cross_entropy(feats(batch.query) @ W.T + b, batch.query_labels)
    meta = maml.meta_parameters()
    return torch.autograd.grad(q_loss, meta, allow_unused=True, materialize_grads=True), q_loss


def build(scope, first_order, steps, family="bert", head_init="proto", learn="none", lr=0.3):
    model = tiny_model(family, dtype=torch.float64)
    if scope == "lora":
        cfg = default_lora_config(r=2, target_modules=["query", "value"])
        cfg.init_lora_weights = False  # B = 0 would hide every second-order LoRA path
        model = apply_lora(model, cfg)
    config = MAMLConfig(
        inner_steps=steps,
        inner_learning_rate=lr,
        first_order=first_order,
        adapt_scope=scope,
        head_init=head_init,
        learn_inner_lr=learn,
    )
    return MAML(model, config).double()


def our_meta_grads(maml, batch):
    maml.zero_grad(set_to_none=True)
    out = maml(batch)
    out.loss.backward()
    return [
        p.grad if p.grad is not None else torch.zeros_like(p) for p in maml.meta_parameters()
    ], out


@pytest.mark.parametrize("scope", ["full", "lora", "head"])
@pytest.mark.parametrize("first_order", [True, False])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_reference(tokenizer, scope, first_order, steps):
    maml = build(scope, first_order, steps)
    batch = make_batch(tokenizer)
    ours, out = our_meta_grads(maml, batch)
    ref, ref_loss = reference_meta_grads(maml, batch, steps, 0.3, first_order)
    assert abs(out.loss.item() - ref_loss.item()) < 1e-9
    assert any(g.abs().sum() > 0 for g in ours)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("head_init", ["cosine", "ridge"])
@pytest.mark.parametrize("scope,first_order", [("full", False), ("lora", True), ("head", False)])
@pytest.mark.parametrize("with_names", [False, True])
def test_normalised_heads_and_label_names_match_reference(
    tokenizer, head_init, scope, first_order, with_names
):
    """Cosine and ridge heads (L2-normalised features) and label-name support examples:
    the meta-gradient still equals explicit MAML."""
    maml = build(scope, first_order, 2, head_init=head_init)
    batch = make_batch(tokenizer)
    if with_names:
        batch.names = dict(
            tokenizer(["travel", "money", "music"], padding=True, return_tensors="pt")
        )
    ours, out = our_meta_grads(maml, batch)
    ref, ref_loss = reference_meta_grads(maml, batch, 2, 0.3, first_order)
    assert abs(out.loss.item() - ref_loss.item()) < 1e-9
    assert any(g.abs().sum() > 0 for g in ours)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("scope", ["full", "lora"])
def test_second_order_differs_from_first_order(tokenizer, scope):
    batch = make_batch(tokenizer)
    fo, _ = our_meta_grads(build(scope, True, 2, lr=30.0), batch)
    so, _ = our_meta_grads(build(scope, False, 2, lr=30.0), batch)
    rel = max(((a - b).norm() / (b.norm() + 1e-30)).item() for a, b in zip(fo, so))
    assert rel > 1e-3


def test_first_order_is_query_gradient_at_adapted_weights(tokenizer):
    maml = build("full", True, 2, head_init="zero")
    batch = make_batch(tokenizer)
    grads, _ = our_meta_grads(maml, batch)
    fast, _ = maml.adapt_fast_weights(batch.support, batch.support_labels, 3, meta_grad=False)
    fast = {n: w.requires_grad_() for n, w in fast.items()}
    q_loss = F.cross_entropy(
        maml.logits(maml.features(fast, batch.query), fast), batch.query_labels
    )
    at_adapted = torch.autograd.grad(q_loss, [fast[n] for n in maml.fast_names])
    by_name = dict(zip(maml.fast_names, grads))
    for name, g in zip(maml.fast_names, at_adapted):
        torch.testing.assert_close(by_name[name], g, atol=1e-9, rtol=1e-7)


def test_lora_leaves_base_weights_untouched(tokenizer):
    maml = build("lora", False, 2)
    base_before = {
        n: p.detach().clone() for n, p in maml.model.named_parameters() if "lora_" not in n
    }
    opt = torch.optim.SGD(maml.meta_parameters(), lr=0.1)
    our_meta_grads(maml, make_batch(tokenizer))
    for n, p in maml.model.named_parameters():
        if "lora_" not in n:
            assert p.grad is None, n
    opt.step()
    for n, p in maml.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base_before[n]), n
    assert all("lora_" in n for n in maml.fast_names)


@pytest.mark.parametrize("granularity", ["param", "layer"])
def test_learned_inner_lrs_get_gradient_and_change(tokenizer, granularity):
    maml = build("full", False, 2, learn=granularity)
    batch = make_batch(tokenizer)
    ours, _ = our_meta_grads(maml, batch)
    ref, _ = reference_meta_grads(maml, batch, 2, None, False)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    before = {k: v.item() for k, v in maml.log_inner_lrs.items()}
    assert all(v.grad is not None and v.grad.abs() > 0 for v in maml.log_inner_lrs.values())
    torch.optim.SGD(maml.meta_parameters(), lr=0.1).step()
    assert any(v.item() != before[k] for k, v in maml.log_inner_lrs.items())
    if granularity == "layer":
        assert set(maml.log_inner_lrs) >= {"layer_0", "layer_1", "head"}


def test_top_k_scope_adapts_only_top_layers():
    model = tiny_model("bert", num_hidden_layers=3)
    maml = MAML(model, MAMLConfig(adapt_scope="top:1"))
    assert maml.fast_names and all(".layer.2." in n or "pooler" in n for n in maml.fast_names), (
        maml.fast_names
    )


def test_support_chunks_give_same_result(tokenizer):
    batch = make_batch(tokenizer, n_way=3, k=3, q=1)
    whole = build("full", False, 2)
    chunked = build("full", False, 2)
    chunked.config.support_batch_size = 2
    a, out_a = our_meta_grads(whole, batch)
    b, out_b = our_meta_grads(chunked, batch)
    assert abs(out_a.loss.item() - out_b.loss.item()) < 1e-10
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-7)


def test_gradient_checkpointing_same_meta_gradient(tokenizer):
    batch = make_batch(tokenizer)
    plain = build("full", False, 2)
    ckpt = MAML(
        plain.model.__class__(plain.model.config),
        MAMLConfig(**{**plain.config.to_dict(), "gradient_checkpointing": True}),
    ).double()
    ckpt.model.load_state_dict(plain.model.state_dict())
    ckpt.model.train()
    plain.model.train()
    a, _ = our_meta_grads(plain, batch)
    b, _ = our_meta_grads(ckpt, batch)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-9, rtol=1e-7)


def test_second_order_under_sdpa(tokenizer):
    from transformers import AutoModelForSequenceClassification

    eager = tiny_model("bert", dtype=torch.float64)
    sdpa = AutoModelForSequenceClassification.from_config(eager.config, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    batch = make_batch(tokenizer)
    cfg = dict(inner_steps=2, inner_learning_rate=0.3, first_order=False)
    a, _ = our_meta_grads(MAML(eager, MAMLConfig(**cfg)).double(), batch)
    b, _ = our_meta_grads(MAML(sdpa.double(), MAMLConfig(**cfg)).double(), batch)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("scope,learn", [("full", "none"), ("lora", "layer"), ("top:1", "param")])
def test_step_checkpointing_same_meta_gradient_less_memory(tokenizer, scope, learn):
    """Whole inner steps recomputed in the outer backward: the same meta-gradient, and the
    graph kept for the outer backward stops growing with each extra inner step. (A checkpoint
    keeps its input weights: with the tiny model's 30k-word embedding adapted ('full'), those
    outweigh its activations, so the memory check is on the scopes that leave it alone.)"""
    batch = make_batch(tokenizer)

    def run(checkpointed: bool, steps: int):
        maml = build(scope, False, steps, learn=learn)
        maml.config.step_checkpointing = checkpointed
        saved: dict[int, int] = {}

        def pack(tensor):
            saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            grads, out = our_meta_grads(maml, batch)
        return grads, out, sum(saved.values())

    plain, out, plain_bytes = run(False, 3)
    ckpt, out_ckpt, ckpt_bytes = run(True, 3)
    assert out.loss.item() == pytest.approx(out_ckpt.loss.item(), abs=1e-12)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    if scope != "full":
        growth_plain = plain_bytes - run(False, 2)[2]
        growth_ckpt = ckpt_bytes - run(True, 2)[2]
        assert 0 < growth_ckpt < 0.5 * growth_plain, (growth_ckpt, growth_plain)


# ---------------------------------------------------------------- bad input
def test_unknown_head_names_what_was_looked_at():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.final = nn.Linear(4, 2)

    with pytest.raises(ModelError, match=r"classifier.*head_name="):
        MAML(Odd())
    assert MAML(Odd(), MAMLConfig(head_name="final", adapt_scope="head")).head_name == "final"


def test_lora_scope_without_lora_layers():
    with pytest.raises(ConfigError, match="no trainable LoRA layers"):
        MAML(tiny_model(), MAMLConfig(adapt_scope="lora"))


def test_one_class_episode(tokenizer):
    batch = make_batch(tokenizer, n_way=1)
    with pytest.raises(ConfigError, match="needs >= 2"):
        MAML(tiny_model())(batch)


def test_non_finite_support_loss_names_source_and_step(tokenizer):
    model = tiny_model()
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.fill_(float("nan"))
    before = model.bert.encoder.layer[0].attention.self.query.weight.clone()
    with pytest.raises(TrainingError, match=r"'toy' at inner step 0"):
        MAML(model)(make_batch(tokenizer))
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, before)


def test_bad_config_values():
    with pytest.raises(ConfigError, match="adapt_scope"):
        MAMLConfig(adapt_scope="top:x")
    with pytest.raises(ConfigError, match="head_init"):
        MAMLConfig(head_init="xavier")


@pytest.mark.parametrize("scope", ["full", "head"])
def test_detached_chunked_adaptation_equals_meta_path(tokenizer, scope):
    """Inference-time adaptation (chunked, no graph) lands on the same fast weights."""
    maml = build(scope, True, 3)
    batch = make_batch(tokenizer, n_way=3, k=3, q=1)
    ref, _ = maml.adapt_fast_weights(batch.support, batch.support_labels, 3)
    maml.config.support_batch_size = 4
    fast, metrics = maml.adapt_fast_weights(batch.support, batch.support_labels, 3, meta_grad=False)
    assert set(fast) == set(ref)
    for name in ref:
        torch.testing.assert_close(fast[name], ref[name].detach(), atol=1e-9, rtol=1e-7)
    assert metrics["support_loss_before"] > 0


def test_second_order_checkpointing_under_sdpa(tokenizer):
    """The recompute in backward must use the attention kernel the forward used."""
    from transformers import AutoModelForSequenceClassification

    eager = tiny_model("bert", dtype=torch.float64)
    batch = make_batch(tokenizer)
    cfg = dict(inner_steps=2, inner_learning_rate=0.3, first_order=False)
    expected, _ = our_meta_grads(MAML(eager, MAMLConfig(**cfg)).double(), batch)
    sdpa = AutoModelForSequenceClassification.from_config(eager.config, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ckpt = MAML(sdpa.double(), MAMLConfig(**cfg, gradient_checkpointing=True)).double()
    ckpt.model.train()
    got, _ = our_meta_grads(ckpt, batch)
    for x, y in zip(got, expected):
        torch.testing.assert_close(x, y, atol=1e-7, rtol=1e-6)
