"""Found or named: the shares of thing targets that the final decoder layer localises and names."""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

# localised: some query's mask has IoU >= 0.5 (class ignored); matched_mask_ok: the matched query's
# mask does; matched_class_ok: the matched query's top text is the target's class; both: a true
# positive at IoU 0.5.
SHARES = ("localised", "matched_mask_ok", "matched_class_ok", "matched_both_ok")
IOU_THRESHOLD = 0.5


def mask_ious(mask_logits: Tensor, target_masks: Tensor) -> Tensor:
    """(Q, h, w) mask logits, (K, H, W) bool targets -> (Q, K) IoU at the logits' resolution
    (targets resized bilinearly, both thresholded at 0.5)."""
    targets = F.interpolate(target_masks[None].float(), size=mask_logits.shape[-2:], mode="bilinear",
                            align_corners=False)[0] > 0.5
    predicted = mask_logits.sigmoid() > 0.5
    intersection = (predicted[:, None] & targets[None]).flatten(2).sum(-1).float()
    union = (predicted[:, None] | targets[None]).flatten(2).sum(-1).float()
    return intersection / union.clamp(min=1)


def target_outcomes(ious: Tensor, query: int, target: int, class_ok: bool) -> Dict[str, bool]:
    """One matched thing target's outcome per share; ious (Q, K)."""
    mask_ok = float(ious[query, target]) >= IOU_THRESHOLD
    return {"localised": float(ious[:, target].max()) >= IOU_THRESHOLD, "matched_mask_ok": mask_ok,
            "matched_class_ok": class_ok, "matched_both_ok": mask_ok and class_ok}


def share_percentages(outcomes: Dict[str, list]) -> Dict[str, float]:
    """{share: [bool per target]} -> {share: % true, "things": number of targets}."""
    things = len(outcomes[SHARES[0]]) if outcomes else 0
    result = {share: 100.0 * sum(outcomes.get(share, [])) / max(things, 1) for share in SHARES}
    result["things"] = things
    return result
