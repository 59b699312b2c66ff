"""Denoising (DN) queries, as in Mask DINO, over an open vocabulary.

During training the decoder runs extra queries built from noised ground truth next to its matching
(learnable + conditional) queries; each DN query must reconstruct the clean label, box and mask of
the target it was made from, with a fixed assignment instead of Hungarian matching. That gives
every layer a stable, easy signal from the first iteration.

Layout of the decoder's query sequence during training (DN queries first, then matching):

    [ group 0 | group 1 | ... | group G-1 | matching queries ]
      S slots   S slots         S slots     N_match

S = the largest target count of the batch; image b fills slots 0..K_b-1 of every group with its
targets in order and leaves the rest as padding (zero content, a centred half-size box, never
supervised by the box/mask losses; the class loss treats them as negatives).

Choices (and why):
* Content = the projected text embedding of the (possibly noised) label, so DN trains the same
  text projection that scores queries; label noise draws another text of the *image's own*
  vocabulary, since texts of other images are not negatives for it.
* Every target gets DN queries, including stuff (``has_box`` False), as Mask DINO does for
  panoptic: its box (derived from its mask) still seeds the anchor, and the criterion supervises
  its label and mask only.
* Only positive queries (Mask DINO's "seg" DN); DINO's contrastive negatives are not built.
* A batch whose images all have zero targets gets no DN at all (``None``).
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor


class DenoisingQueries(NamedTuple):
    """What the decoder needs to run DN queries. N_dn = num_groups * group_size.

    content: (B, N_dn, D) content embeddings of the DN queries.
    reference_boxes: (B, N_dn, 4) unsigmoided anchors: ``logit`` of the noised normalised cxcywh.
    attn_mask: (N_dn + N_match, N_dn + N_match) bool self-attention mask over the concatenated
        sequence [DN queries, matching queries]; True = attention blocked (the convention of
        ``nn.MultiheadAttention``'s bool ``attn_mask``).
    meta: the ``dn_meta`` dict for the criterion (see ``build_denoising_queries``).
    """

    content: Tensor
    reference_boxes: Tensor
    attn_mask: Tensor
    meta: Dict


def build_denoising_queries(
    targets: Sequence[Dict[str, Tensor]],
    text_embeddings: Tensor,
    text_valid: Tensor,
    *,
    num_matching_queries: int,
    dn_query_budget: int = 100,
    label_noise_ratio: float = 0.2,
    box_noise_scale: float = 0.4,
    generator: Optional[torch.Generator] = None,
) -> Optional[DenoisingQueries]:
    """Build the DN queries of a training batch, or None when the batch has no target at all.

    Args:
        targets: B dicts with ``labels`` int64 (K_b,) into the union text list and ``boxes``
            (K_b, 4) normalised cxcywh (other keys are ignored here).
        text_embeddings: (T, D) union text embeddings or (B, T, D) per image, already projected to
            the decoder width D.
        text_valid: (B, T) bool, which texts form each image's vocabulary (label-noise pool).
        num_matching_queries: N_match, the learnable + conditional queries that follow.
        dn_query_budget: about how many DN queries to run: G = max(1, budget // S) groups, so
            N_dn = G * S (exceeds the budget only when one image has more targets than it).
        label_noise_ratio: probability that a DN query's label is replaced by another text.
        box_noise_scale: lambda; centres move by up to lambda * (w/2, h/2) and sizes are scaled by
            a factor in [1 - lambda, 1 + lambda].
        generator: optional RNG on the embeddings' device, for reproducible noise.

    ``meta`` (``dn_meta``) keys:
        ``num_dn_queries`` (N_dn), ``num_groups`` (G), ``group_size`` (S), ``num_matching_queries``;
        ``dn_indices``: per image ``(query_idx, target_idx)`` int64 CPU tensors of length G * K_b,
            the fixed assignment (query index counted within the DN part);
        ``labels`` (B, N_dn) int64 noised labels, ``boxes`` (B, N_dn, 4) noised normalised cxcywh,
        ``valid`` (B, N_dn) bool (False = padding slot).
    """
    _check_settings(dn_query_budget, label_noise_ratio, box_noise_scale)
    counts = [int(t["labels"].shape[0]) for t in targets]
    group_size = max(counts, default=0)
    if group_size == 0:
        return None
    num_groups = max(1, dn_query_budget // group_size)
    device = text_embeddings.device
    labels, boxes, valid = _repeated_groups(targets, group_size, num_groups, device)
    # Labels are noised before boxes: the RNG draws (and so seeded results) follow this order.
    labels = noise_labels(labels, valid, text_valid.to(device), label_noise_ratio, generator)
    boxes = noise_boxes(boxes, box_noise_scale, generator)
    content = _label_content(text_embeddings, labels, valid)
    reference = _reference_boxes(boxes, valid)
    meta = _dn_meta(counts, num_groups, group_size, num_matching_queries, labels, boxes, valid)
    mask = dn_attention_mask(num_groups, group_size, num_matching_queries, content.device)
    return DenoisingQueries(content, reference, mask, meta)


def _check_settings(dn_query_budget: int, label_noise_ratio: float, box_noise_scale: float) -> None:
    """Raises ValueError unless budget > 0, 0 <= ratio <= 1 and scale >= 0."""
    if dn_query_budget <= 0 or not 0.0 <= label_noise_ratio <= 1.0 or box_noise_scale < 0:
        raise ValueError(
            "need dn_query_budget > 0, 0 <= label_noise_ratio <= 1 and box_noise_scale >= 0, got "
            f"{dn_query_budget}, {label_noise_ratio}, {box_noise_scale}"
        )


def _repeated_groups(
    targets: Sequence[Dict[str, Tensor]], group_size: int, num_groups: int, device: torch.device
) -> Tuple[Tensor, Tensor, Tensor]:
    """The clean padded targets, once per group: labels (B, G * S) int64, boxes (B, G * S, 4),
    valid (B, G * S) bool. Every group becomes its own noisy copy of the same target list."""
    labels, boxes, valid = _pad_targets(targets, group_size, device)
    return labels.repeat(1, num_groups), boxes.repeat(1, num_groups, 1), valid.repeat(1, num_groups)


def _label_content(text_embeddings: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """Content of each DN query: the embedding of its (noised) label, zero on padding slots.

    text_embeddings (T, D) or (B, T, D); labels, valid (B, N_dn) -> (B, N_dn, D).
    """
    emb = text_embeddings if text_embeddings.dim() == 3 else text_embeddings[None]
    emb = emb.expand(len(labels), -1, -1)
    content = torch.gather(emb, 1, labels[..., None].expand(-1, -1, emb.shape[-1]))
    return content * valid[..., None].to(content.dtype)


def _reference_boxes(boxes: Tensor, valid: Tensor) -> Tensor:
    """(B, N_dn, 4) noised normalised cxcywh -> unsigmoided anchors; padding slots get 0, a
    centred box of half the image."""
    return torch.logit(boxes, eps=1e-5) * valid[..., None].to(boxes.dtype)


def _dn_meta(counts: List[int], num_groups: int, group_size: int, num_matching_queries: int,
             labels: Tensor, boxes: Tensor, valid: Tensor) -> Dict:
    """The ``dn_meta`` dict for the criterion (keys in ``build_denoising_queries``)."""
    return {
        "num_dn_queries": num_groups * group_size,
        "num_groups": num_groups,
        "group_size": group_size,
        "num_matching_queries": num_matching_queries,
        "dn_indices": _dn_indices(counts, num_groups, group_size),
        "labels": labels,
        "boxes": boxes,
        "valid": valid,
    }


def _pad_targets(
    targets: Sequence[Dict[str, Tensor]], size: int, device: torch.device
) -> Tuple[Tensor, Tensor, Tensor]:
    """Per image labels / boxes padded to ``size``: (B, S) int64, (B, S, 4) float, (B, S) bool."""
    bsz = len(targets)
    labels = torch.zeros(bsz, size, dtype=torch.int64, device=device)
    boxes = torch.full((bsz, size, 4), 0.5, device=device)
    valid = torch.zeros(bsz, size, dtype=torch.bool, device=device)
    for b, t in enumerate(targets):
        k = t["labels"].shape[0]
        if tuple(t["boxes"].shape) != (k, 4):
            raise ValueError(
                f"targets[{b}]['boxes'] must be ({k}, 4), got {tuple(t['boxes'].shape)}"
            )
        labels[b, :k] = t["labels"]
        boxes[b, :k] = t["boxes"].float().clamp(0.0, 1.0)
        valid[b, :k] = True
    return labels, boxes, valid


def _dn_indices(counts: List[int], num_groups: int, group_size: int) -> List[Tuple[Tensor, Tensor]]:
    """Slot k of group g reconstructs target k: query g * S + k <-> target k, for k < K_b."""
    out = []
    for k in counts:
        offsets = torch.arange(num_groups, dtype=torch.int64)[:, None] * group_size
        query = (offsets + torch.arange(k, dtype=torch.int64)[None]).flatten()
        out.append((query, torch.arange(k, dtype=torch.int64).repeat(num_groups)))
    return out


def noise_labels(
    labels: Tensor,
    valid: Tensor,
    text_valid: Tensor,
    ratio: float,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Replace each valid label with probability ``ratio`` by a different text of the same image.

    labels (B, N) int64, valid (B, N) bool, text_valid (B, T) bool -> noised labels (B, N).
    Uniform over the image's other vocabulary texts; a one-text vocabulary cannot be flipped.
    """
    flip = (torch.rand(labels.shape, device=labels.device, generator=generator) < ratio) & valid
    if not bool(flip.any()):
        return labels
    rows, cols = flip.nonzero(as_tuple=True)
    weights = text_valid[rows].float()  # (F, T): candidates = this image's vocabulary ...
    weights[torch.arange(rows.shape[0], device=labels.device), labels[rows, cols]] = (
        0.0  # ... minus itself
    )
    can_flip = weights.sum(-1) > 0
    weights[~can_flip] = 1.0  # any value: the draw is discarded below
    drawn = torch.multinomial(weights, 1, generator=generator)[:, 0]
    out = labels.clone()
    out[rows, cols] = torch.where(can_flip, drawn, labels[rows, cols])
    return out


def noise_boxes(boxes: Tensor, scale: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Jitter normalised cxcywh boxes (..., 4) -> (..., 4), uniformly and independently per side.

    The centre moves by up to ``scale * (w, h) / 2`` (so it stays inside the original box for
    scale <= 1) and the size is multiplied by a factor in ``[1 - scale, 1 + scale]``; the result is
    clamped to [0, 1].
    """
    if scale == 0:
        return boxes
    u = torch.rand(boxes.shape, device=boxes.device, generator=generator) * 2.0 - 1.0
    wh = boxes[..., 2:]
    centre = boxes[..., :2] + u[..., :2] * scale * wh / 2.0
    size = wh * (1.0 + u[..., 2:] * scale)
    return torch.cat([centre, size], dim=-1).clamp(0.0, 1.0)


def dn_attention_mask(
    num_groups: int, group_size: int, num_matching_queries: int, device: torch.device
) -> Tensor:
    """Self-attention mask (N_dn + N_match, N_dn + N_match) bool, True = blocked.

    Rows and columns follow the sequence [DN group 0 .. G-1, matching queries].

    Matching queries never see DN queries (they would read the ground truth, which inference does
    not have); each DN group sees itself and the matching queries but no other group (a group
    would otherwise copy the answer from another noisy copy of the same target).
    """
    num_dn = num_groups * group_size
    total = num_dn + num_matching_queries
    group = torch.arange(total, device=device) // group_size
    is_dn = torch.arange(total, device=device) < num_dn
    other_group = group[:, None] != group[None, :]
    # Column j is hidden from row i when j is a DN query and i is a matching query or in
    # another group; matching columns are visible to every row.
    return is_dn[None, :] & (other_group | ~is_dn[:, None])
