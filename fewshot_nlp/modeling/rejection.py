"""The rejection output of an exported classifier: a logit that is the threshold.

A bias would do for heads that read a padding-free feature (the ``[CLS]`` pooler). The
mean-pooling export reads ``sum(hidden) / padded_length``, so every class logit of a padded
text is scaled by ``length / padded_length``; a constant logit would then reject short texts
batched with long ones. The extra output therefore reads a direction ``u`` with ``u . h = 1``
for every real token's last hidden state ``h``: its logit is ``threshold * length /
padded_length``, scaled exactly as the class logits are, so the argmax never depends on the
batch. Such a direction exists in a post-LayerNorm encoder: ``h = gamma * n + beta`` with
``sum(n) = 0``, so ``(1 / gamma) . h = sum(beta / gamma)`` for every token.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError
from .head import find_head, set_head, unwrap_peft
from .pooling import is_mean_pooling

TINY = 1e-6  # relative size under which a LayerNorm gain counts as zero
TOLERANCE = 1e-3


def add_rejection_output(
    classifier: nn.Module,
    label: str,
    threshold: float,
    temperature: float = 1.0,
    probe: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Divide the class logits by ``temperature`` and append ``label``, whose logit is
    ``threshold`` (scaled like the class logits where padding scales them). ``probe``:
    tokenized texts on which the padding-invariance is checked (recommended)."""
    base = unwrap_peft(classifier)
    head_name = find_head(classifier)
    head = base.get_submodule(head_name)
    head = getattr(head, "base_layer", head)
    weight = head.weight.detach().clone() / temperature
    bias = head.bias.detach().clone() / temperature if head.bias is not None else None
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    labels = [base.config.id2label[i] for i in range(base.config.num_labels)]
    if is_mean_pooling(base):
        direction = token_constant_direction(base, weight)
        extra_weight, extra_bias = threshold * direction, weight.new_zeros(())
    else:
        extra_weight, extra_bias = weight.new_zeros(weight.shape[1]), weight.new_tensor(threshold)
    set_head(
        classifier,
        head_name,
        torch.cat([weight, extra_weight[None].to(weight)]),
        torch.cat([bias, extra_bias.reshape(1).to(bias)]),
        [*labels, label],
    )
    if probe is not None and is_mean_pooling(base):
        _check_direction(base, probe)
    return classifier


def token_constant_direction(model: nn.Module, head_weight: torch.Tensor) -> torch.Tensor:
    """``u`` with ``u . h = 1`` for every token's last hidden state, from the last LayerNorm.

    A gain of (numerically) zero makes its dimension useless for ``1 / gamma``: if its bias
    is not zero too, that dimension is itself constant (``u`` reads it alone); otherwise the
    dimension is dead (always 0): its gain is set to 1 so that the identity holds, and
    ``head_weight``'s column for it (which multiplied zeros) to 0, so no class logit moves.
    A LayerNorm without bias gets one in a direction no class row reads.
    """
    norm = _last_layer_norm(model)
    gain, shift = norm.weight.detach().double(), norm.bias.detach().double()
    scale = float(gain.abs().max())
    tiny = gain.abs() <= TINY * scale
    constant = tiny & (shift.abs() > TINY * max(float(shift.abs().max()), 1e-12))
    if constant.any():
        d = int(constant.nonzero()[0])
        direction = torch.zeros_like(gain)
        direction[d] = 1.0 / shift[d]
        return direction.to(head_weight.dtype)
    if tiny.any():
        with torch.no_grad():
            norm.weight[tiny] = 1.0
            head_weight[:, tiny] = 0.0
        gain = norm.weight.detach().double()
    direction = 1.0 / gain
    total = float((shift * direction).sum())
    if abs(total) < TINY * float(direction.abs().sum()):
        # No bias to read (an untrained LayerNorm): give it one that no class row sees, a
        # shift orthogonal to every class weight, so the class logits stay as they were.
        rows = head_weight.detach().double()
        unseen = direction - rows.T @ torch.linalg.lstsq(rows @ rows.T, rows @ direction).solution
        reach = float(direction @ unseen)
        if reach < TINY * float(direction @ direction):
            raise ModelError(
                "Cannot build a padding-independent rejection output for this model: its "
                "last LayerNorm has no bias and the head uses every direction."
            )
        with torch.no_grad():
            norm.bias += (unseen / reach).to(norm.bias)
        total = float((norm.bias.detach().double() * direction).sum())
    return (direction / total).to(head_weight.dtype)


def _last_layer_norm(model: nn.Module) -> nn.LayerNorm:
    transformer = getattr(model, "transformer", None)
    norms = getattr(transformer, "layer_norm2", None)
    if not norms:
        raise ModelError(
            f"{type(model).__name__} has no last LayerNorm where expected "
            "(transformer.layer_norm2): the rejection output needs a post-LayerNorm encoder."
        )
    return norms[-1]


@torch.no_grad()
def _check_direction(model: nn.Module, probe: dict[str, torch.Tensor]) -> None:
    """The rejection logit of each probe text is ``threshold * length / padded_length``."""
    mask = probe["attention_mask"]
    hidden = model.transformer(**probe).last_hidden_state
    row = model.get_submodule(find_head(model)).weight[-1]
    ratio = mask.sum(1).to(hidden.dtype) / mask.shape[1]
    per_text = (hidden.mean(1) @ row) / ratio  # the threshold, for every text alike
    if not torch.allclose(per_text, per_text[:1].expand_as(per_text), rtol=TOLERANCE, atol=1e-4):
        raise ModelError(
            "The rejection output of this classifier would depend on padding (its logit over "
            f"length / padded length varies: {per_text.tolist()[:4]}); nothing was exported."
        )
