"""Scalars logged at every training step that show how the model learns to find and name things:
where the conditional queries are selected, how good the best proposal of each thing is, and the
state of the text classifier. They go to detectron2's EventStorage (so to metrics.json, as 20-step
medians) under "diag/"; `mqformer_d2.experiments.results.plot_training_curves` draws them. Computing
them draws no random numbers, so a run with them trains exactly as one without.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.utils.events import get_event_storage
from torch import Tensor

from ..text_batch import TextBatch

PREFIX = "diag/"


def thing_flags(target: Dict[str, Tensor]) -> Tensor:
    """(K,) bool: targets that are things with a mask (a box target and a mask target)."""
    return target["has_box"] & target["has_mask"]


def selected_in_things(token_centers: Tensor, targets: Sequence[Dict[str, Tensor]],
                       mask_valid_ratio: Tensor) -> Optional[float]:
    """Share of the selected tokens whose cell centre lies inside some thing's mask.

    Args:
        token_centers: (B, K, 2) (x, y) normalised by the unpadded image.
        targets: B target dicts (masks (K_b, Hpad, Wpad) bool at the padded size).
        mask_valid_ratio: (B, 2) (w, h) unpadded fraction of the padded image.
    Returns None when no image of the batch has a thing.
    """
    inside, total = 0, 0
    for b, target in enumerate(targets):
        things = target["masks"][thing_flags(target)]
        if things.shape[0] == 0:
            continue
        height, width = things.shape[-2:]
        x = (token_centers[b, :, 0] * mask_valid_ratio[b, 0] * width).long().clamp(0, width - 1)
        y = (token_centers[b, :, 1] * mask_valid_ratio[b, 1] * height).long().clamp(0, height - 1)
        inside += int(things.any(0)[y, x].sum())
        total += token_centers.shape[1]
    return inside / total if total else None


def best_proposal_iou(proposal_masks: Tensor, targets: Sequence[Dict[str, Tensor]]) -> Optional[float]:
    """Mean over the batch's things of the best mask IoU among the selected proposals.

    proposal_masks: (B, K, Hm, Wm) mask logits at stride 4 of the padded image (binarised at 0);
    thing masks are averaged to that size and binarised at 0.5. None when there is no thing.
    """
    best = []
    for b, target in enumerate(targets):
        things = target["masks"][thing_flags(target)]
        if things.shape[0] == 0:
            continue
        truth = F.adaptive_avg_pool2d(things[None].float(), proposal_masks.shape[-2:])[0].flatten(1) >= 0.5
        predicted = (proposal_masks[b] > 0).flatten(1).float()
        truth = truth.float()
        intersection = truth @ predicted.T  # (things, K)
        union = truth.sum(1, keepdim=True) + predicted.sum(1)[None] - intersection
        best.append((intersection / union.clamp(min=1)).amax(1))
    return float(torch.cat(best).mean()) if best else None


def thing_name_cosines(text: TextBatch, targets: Sequence[Dict[str, Tensor]]) -> Dict[str, float]:
    """Mean and largest pairwise cosine of the distinct texts that name the batch's things (the
    class head cannot tell apart two names whose embeddings are parallel); {} with fewer than two."""
    labels = torch.cat([t["labels"][thing_flags(t)] for t in targets]).unique()
    if labels.numel() < 2:
        return {}
    names = F.normalize(text.embeddings[labels.to(text.embeddings.device)].float(), dim=-1)
    cosines = names @ names.T
    pairs = cosines[torch.triu(torch.ones_like(cosines, dtype=torch.bool), diagonal=1)]
    return {"thing_name_cos_mean": float(pairs.mean()), "thing_name_cos_max": float(pairs.max())}


@torch.no_grad()
def training_diagnostics(outputs: Dict, targets: Sequence[Dict[str, Tensor]], text: TextBatch,
                         calibration: Optional[Dict[str, Tensor]], mask_valid_ratio: Tensor) -> Dict[str, float]:
    """All diagnostics of one training step (keys without the "diag/" prefix).

    Args:
        outputs: the decoder's training outputs ("selected_token_centers" and "interm_outputs"
            exist when there are conditional queries).
        targets: the criterion's targets; text: the batch's TextBatch.
        calibration: the class head's `PredictionHeads.class_calibration()` (None: a decoder
            without that head; no scale and bias then).
        mask_valid_ratio: (B, 2) unpadded fraction of the padded image.
    """
    values = {}
    if calibration is not None:
        values.update(logit_scale=float(calibration["logit_scale"]), logit_bias=float(calibration["logit_bias"]))
    values.update(thing_name_cosines(text, targets))
    if "selected_token_centers" in outputs:
        share = selected_in_things(outputs["selected_token_centers"], targets, mask_valid_ratio)
        iou = best_proposal_iou(outputs["interm_outputs"]["pred_masks"], targets)
        values.update({name: value for name, value in (("selected_in_things", share), ("best_proposal_iou", iou))
                       if value is not None})
    return values


def log_training_diagnostics(outputs: Dict, targets: Sequence[Dict[str, Tensor]], text: TextBatch,
                             calibration: Optional[Dict[str, Tensor]], mask_valid_ratio: Tensor) -> None:
    """`training_diagnostics` put into the current EventStorage under "diag/"; nothing (and
    nothing computed) outside detectron2's training loop."""
    try:
        storage = get_event_storage()
    except AssertionError:  # no EventStorage: e.g. a forward pass in a test
        return
    for name, value in training_diagnostics(outputs, targets, text, calibration, mask_valid_ratio).items():
        storage.put_scalar(PREFIX + name, value)
