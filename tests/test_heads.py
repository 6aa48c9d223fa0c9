"""Episode heads: the convex and normalised heads, and their export as a plain linear layer."""

import pytest
import torch
import torch.nn.functional as F

from fewshot_nlp.data.labels import label_name_text
from fewshot_nlp.modeling.head import (
    class_prototypes,
    fit_logistic_regression,
    init_head,
    standard_head,
)


def clusters(n_way=4, per_class=6, hidden=12, seed=0, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_way, hidden, generator=g, dtype=torch.float64)
    labels = torch.arange(n_way).repeat_interleave(per_class)
    noise = spread * torch.randn(len(labels), hidden, generator=g, dtype=torch.float64)
    return centres[labels] + noise, labels


@pytest.mark.parametrize("weighted", [False, True])
def test_logreg_head_is_scikit_learns_solution(weighted):
    from sklearn.linear_model import LogisticRegression

    feats, labels = clusters()
    x = F.normalize(feats, dim=-1)
    weights = torch.ones(len(labels), dtype=torch.float64)
    if weighted:
        weights[::3] = 2.5
    weight, bias = fit_logistic_regression(x, labels, 4, c=3.0, weights=weights)
    reference = LogisticRegression(C=3.0, fit_intercept=False, tol=1e-10, max_iter=10_000)
    reference.fit(x.numpy(), labels.numpy(), sample_weight=weights.numpy())
    coef = torch.from_numpy(reference.coef_)
    assert torch.equal(bias, torch.zeros(4, dtype=torch.float64))
    # scikit-learn's multinomial coefficients are defined up to a shift shared by all classes
    assert torch.allclose(weight - weight.mean(0), coef - coef.mean(0), atol=2e-4)


def test_ridge_head_is_the_closed_form_and_differentiable():
    feats, labels = clusters(n_way=3, per_class=5, hidden=8)
    feats.requires_grad_()
    weight, bias = init_head(feats, labels, 3, "ridge", logit_scale=2.0, regularization=4.0)
    x, y = feats.detach(), F.one_hot(labels, 3).double()
    primal = torch.linalg.solve(x.T @ x + torch.eye(8, dtype=x.dtype) / 4.0, x.T @ y).T
    assert torch.allclose(weight.detach(), 2.0 * primal, atol=1e-8)
    assert torch.equal(bias, torch.zeros(3, dtype=torch.float64))
    weight.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_cosine_head_is_scaled_normalised_prototypes():
    feats, labels = clusters()
    weight, bias = init_head(feats, labels, 4, "cosine", logit_scale=7.0)
    expected = 7.0 * F.normalize(class_prototypes(feats, labels, 4), dim=-1)
    assert torch.allclose(weight, expected) and not bias.any()


def test_weighted_prototypes():
    feats = torch.tensor([[0.0], [1.0], [4.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    protos = class_prototypes(feats, labels, 2, torch.tensor([1.0, 3.0, 1.0]))
    assert protos[:, 0].tolist() == [0.75, 4.0]


@pytest.mark.parametrize("method", ["cosine", "ridge", "logreg"])
def test_standard_head_predicts_what_the_normalised_head_predicts(method):
    """The export is an nn.Linear on raw features: it must give the same argmax."""
    feats, labels = clusters(spread=1.5)
    scale = torch.linspace(0.2, 5.0, len(labels), dtype=torch.float64)[:, None]
    raw = feats * scale  # norms that vary 25-fold
    weight, bias = init_head(F.normalize(raw, dim=-1), labels, 4, method)
    normalised = F.linear(F.normalize(raw, dim=-1), weight, bias).argmax(-1)
    w, b = standard_head(weight, bias, raw.norm(dim=-1).mean().item())
    assert torch.equal(F.linear(raw, w, b).argmax(-1), normalised)


def test_label_names_as_text():
    assert label_name_text("card_arrival") == "card arrival"
    assert label_name_text("AddToPlaylist") == "add to playlist"
    assert label_name_text("DESC:manner") == "desc manner"
    assert label_name_text("lost_or_stolen-card") == "lost or stolen card"
    assert label_name_text(7) == "7"
