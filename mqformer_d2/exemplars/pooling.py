"""Pooling K exemplar embeddings into one prompt, as the multiple-instance visual component (MIVC,
WACV 2024) fuses several images: mean, max, attention and gated attention.

The attention weight of exemplar k is a softmax over the K exemplars (Ilse et al., 2018, the
attention-MIL that MIVC builds on), so each weight depends on every exemplar of the set and the
pooled vector does not depend on their order:

    attention:        a_k = softmax_k( w^T tanh(V h_k) )
    gated attention:  a_k = softmax_k( w^T (tanh(V h_k) * sigmoid(U h_k)) )
    pooled            z   = sum_k a_k h_k

Every pooling takes a padded batch of sets (P, K, C) with a (P, K) validity mask, so prompts with
different numbers of exemplars pool in one call.
"""
from typing import Optional

import torch
from torch import Tensor, nn

POOLINGS = ("mean", "max", "attention", "gated_attention")


def _check_sets(embeddings: Tensor, valid: Tensor) -> None:
    if embeddings.dim() != 3 or valid.shape != embeddings.shape[:2]:
        raise ValueError(f"exemplar pooling expects embeddings (P, K, C) and valid (P, K), got "
                         f"{tuple(embeddings.shape)} and {tuple(valid.shape)}")
    if embeddings.shape[1] == 0 or not bool(valid.any(1).all()):
        raise ValueError("exemplar pooling: every prompt needs at least one exemplar (K = 0 given)")


class MeanPooling(nn.Module):
    """z = mean of the valid h_k."""

    def forward(self, embeddings: Tensor, valid: Tensor) -> Tensor:
        """embeddings (P, K, C), valid (P, K) bool -> (P, C)."""
        _check_sets(embeddings, valid)
        weights = valid.to(embeddings.dtype)
        return (embeddings * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)


class MaxPooling(nn.Module):
    """z = element-wise max of the valid h_k."""

    def forward(self, embeddings: Tensor, valid: Tensor) -> Tensor:
        """embeddings (P, K, C), valid (P, K) bool -> (P, C)."""
        _check_sets(embeddings, valid)
        return embeddings.masked_fill(~valid[..., None], float("-inf")).amax(1)


class AttentionPooling(nn.Module):
    """z = sum_k a_k h_k with a_k = softmax_k(w^T tanh(V h_k)) (gated: times sigmoid(U h_k) inside).

    Args:
        dim: width C of the exemplar embeddings.
        attention_dim: rows of V (and U).
        gated: MIVC's gated variant.
    """

    def __init__(self, dim: int, attention_dim: int, gated: bool = False):
        super().__init__()
        self.V = nn.Linear(dim, attention_dim)
        self.U = nn.Linear(dim, attention_dim) if gated else None
        self.w = nn.Linear(attention_dim, 1, bias=False)

    def weights(self, embeddings: Tensor, valid: Tensor) -> Tensor:
        """embeddings (P, K, C), valid (P, K) bool -> attention weights (P, K), 0 at padding,
        summing to 1 over each set."""
        _check_sets(embeddings, valid)
        hidden = torch.tanh(self.V(embeddings))
        if self.U is not None:
            hidden = hidden * torch.sigmoid(self.U(embeddings))
        scores = self.w(hidden).squeeze(-1).masked_fill(~valid, float("-inf"))
        return scores.softmax(dim=1)

    def forward(self, embeddings: Tensor, valid: Tensor) -> Tensor:
        """embeddings (P, K, C), valid (P, K) bool -> (P, C)."""
        return torch.einsum("pk,pkc->pc", self.weights(embeddings, valid), embeddings)


def build_pooling(name: str, dim: int, attention_dim: int) -> nn.Module:
    """The pooling called `name` (one of POOLINGS) for C = `dim` embeddings."""
    if name == "mean":
        return MeanPooling()
    if name == "max":
        return MaxPooling()
    if name in ("attention", "gated_attention"):
        return AttentionPooling(dim, attention_dim, gated=name == "gated_attention")
    raise ValueError(f"MODEL.MQFORMER.EXEMPLARS.POOLING: {name!r} is not one of {POOLINGS}")


def pool_sets(pooling: nn.Module, sets: list, device: Optional[torch.device] = None) -> Tensor:
    """Pool a list of P tensors (K_p, C) of different K_p -> (P, C) (padded into one call)."""
    if not sets:
        raise ValueError("no exemplar prompts to pool")
    for index, embeddings in enumerate(sets):
        if embeddings.shape[0] == 0:
            raise ValueError(f"exemplar prompt {index} has no exemplar (K = 0)")
    padded = nn.utils.rnn.pad_sequence(sets, batch_first=True)
    lengths = torch.tensor([s.shape[0] for s in sets], device=padded.device)
    valid = torch.arange(padded.shape[1], device=padded.device)[None] < lengths[:, None]
    return pooling(padded, valid)
