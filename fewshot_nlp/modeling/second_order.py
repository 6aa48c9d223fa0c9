"""What second-order MAML needs from the encoder: attention kernels with a double backward,
and activation checkpointing whose recompute runs the same kernels as the forward."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ConfigError, ModelError


@contextlib.contextmanager
def double_backward_attention(model: nn.Module, create_graph: bool):
    """Second order needs double backward, which only the math SDPA kernel has."""
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if not create_graph or impl in (None, "eager"):
        yield
        return
    if impl != "sdpa":
        raise ConfigError(
            f"Second-order MAML needs double backward through attention, which "
            f"attn_implementation={impl!r} does not provide. Load the model with "
            "attn_implementation='eager' or 'sdpa', or set first_order=True."
        )
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        yield


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Non-reentrant checkpointing: the only kind that supports second-order gradients."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {"use_reentrant": False, "context_fn": _recompute_with_forward_attention}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif getattr(base, "supports_gradient_checkpointing", False):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise ModelError(f"{type(base).__name__} does not support gradient checkpointing.")


def _recompute_with_forward_attention():
    """Checkpoint contexts: the recompute picks the SDPA kernels the forward picked.

    Second order runs its forward under the math kernel only; a recompute in the outer
    backward (outside that context) would pick another kernel, whose saved tensors differ.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    enabled = {
        SDPBackend.MATH: torch.backends.cuda.math_sdp_enabled(),
        SDPBackend.FLASH_ATTENTION: torch.backends.cuda.flash_sdp_enabled(),
        SDPBackend.EFFICIENT_ATTENTION: torch.backends.cuda.mem_efficient_sdp_enabled(),
        SDPBackend.CUDNN_ATTENTION: torch.backends.cuda.cudnn_sdp_enabled(),
    }
    backends = [b for b, on in enabled.items() if on]
    return contextlib.nullcontext(), _Reenterable(lambda: sdpa_kernel(backends))


class _Reenterable:
    """A context entered once per recompute (second order may recompute a block twice)."""

    def __init__(self, make) -> None:
        self.make, self.active = make, []

    def __enter__(self):
        context = self.make()
        self.active.append(context)
        return context.__enter__()

    def __exit__(self, *exc):
        return self.active.pop().__exit__(*exc)
