"""MQ-Former's training losses (paper eq. 1): focal class loss on text similarity, L1 + GIoU box
losses and BCE + dice mask losses, for every decoder layer, the encoder proposals and the
denoising queries."""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.utils import comm
from torch import Tensor, nn

from ..text_batch import TextBatch
from .loss_weights import LossWeights
from .loss_targets import prepare_targets
from .losses import MatchIndices, box_losses, class_focal_loss, mask_losses
from .matcher import HungarianMatcher

DN_LOSS_KINDS = ("labels", "boxes", "masks")
_PRED_KEY = {"labels": "pred_logits", "boxes": "pred_boxes", "masks": "pred_masks"}
_LOSS_NAMES = {
    "labels": ("loss_ce",),
    "boxes": ("loss_bbox", "loss_giou"),
    "masks": ("loss_mask", "loss_dice"),
}


def _matching_sets(outputs: Dict) -> List[Tuple[str, Dict]]:
    """(suffix, prediction dict) of every Hungarian-matched prediction set in ``outputs``."""
    sets = [("", outputs)]
    sets += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs", []))]
    if "interm_outputs" in outputs:
        sets.append(("_interm", outputs["interm_outputs"]))
    return sets


class SetCriterion(nn.Module):
    """Matches queries to targets and returns a dict of **already weighted** scalar losses.

    The weights are applied here, as Detectron2's own heads do, so the meta-architecture returns
    ``criterion(outputs, targets, text)`` as is and Detectron2's trainer sums it. ``weight_dict`` maps
    each base loss name to its weight (for logging or for recovering raw values); the matcher's
    costs are weighted by the same `LossWeights`.

    Loss names: ``loss_ce`` (focal), ``loss_bbox`` (L1), ``loss_giou``, ``loss_mask`` (BCE),
    ``loss_dice``, with a suffix per prediction set: none for the final layer, ``_{i}`` for
    ``aux_outputs[i]``, ``_interm`` for ``interm_outputs``, ``_dn`` and ``_dn_{i}`` for
    ``dn_outputs`` and its ``aux_outputs[i]``. Box (mask) terms exist only for prediction sets
    that have ``pred_boxes`` (``pred_masks``).

    Normalisation: each term is summed over its pairs, then divided by the number of targets it
    applies to (all targets for ``loss_ce``, ``has_box`` ones for box terms, ``has_mask`` ones for
    mask terms; times the group count for DN), averaged over workers and at least 1. So a
    detection-only target does not dilute the mask loss of a mixed batch.

    Outputs dict (B images, Q queries, T texts of the batch union):
        ``pred_logits`` (B, Q, T); ``pred_boxes`` (B, Q, 4) normalised cxcywh after sigmoid;
        ``pred_masks`` (B, Q, Hm, Wm) logits at stride 4 of the padded batch; optional
        ``aux_outputs`` (list of dicts with those keys), ``interm_outputs`` (dict), and when DN ran
        ``dn_outputs`` (dict, Q = N_dn, with its own ``aux_outputs``).
    Targets: list of B dicts, see ``loss_targets`` / docs/data_format.md; checked and moved to the
    predictions' device once per call.
    dn_meta: when DN ran, the ``meta`` of ``denoising.build_denoising_queries`` (the DN queries'
    fixed assignment and group count), else None.
    Text: the batch's ``TextBatch``; its ``valid`` (B, T) bool says which texts are in each image's
    vocabulary (the class loss ignores the other columns of every prediction set).
    """

    def __init__(
        self,
        *,
        matcher: HungarianMatcher,
        weights: LossWeights = LossWeights(),
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        denoising: bool = False,
        dn_losses: Sequence[str] = DN_LOSS_KINDS,
    ):
        """
        Args:
            matcher: the Hungarian matcher, built with the same ``weights``.
            weights: the loss weights (shared by every suffix) and the focal-loss parameters.
            num_points, oversample_ratio, importance_sample_ratio: PointRend point sampling of
                the mask losses (``num_points`` per matched mask).
            denoising: DN is on in the model. When a batch comes without ``dn_outputs`` (no
                target anywhere in it), zero-valued ``*_dn*`` losses are still returned so every
                worker logs the same keys.
            dn_losses: which of ``labels``, ``boxes``, ``masks`` the DN queries reconstruct.
        """
        super().__init__()
        unknown = set(dn_losses) - set(DN_LOSS_KINDS)
        if unknown:
            raise ValueError(
                f"dn_losses has unknown kinds {sorted(unknown)}; known: {DN_LOSS_KINDS}"
            )
        self.matcher = matcher
        self.weights = weights
        self.weight_dict = weights.by_loss_name()
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.denoising = denoising
        self.dn_losses = tuple(dn_losses)

    def forward(self, outputs: Dict, targets: Sequence[Dict[str, Tensor]], text: TextBatch,
                dn_meta: Optional[Dict] = None) -> Dict[str, Tensor]:
        """The weighted loss dict (arguments: see the class docstring)."""
        logits = outputs["pred_logits"]
        text_valid = text.valid
        if text_valid.dtype != torch.bool or text_valid.shape != (logits.shape[0], logits.shape[2]):
            raise ValueError(
                f"text.valid must be bool (B, T) = {(logits.shape[0], logits.shape[2])} "
                f"like pred_logits' batch and text dims, got {text_valid.dtype} "
                f"{tuple(text_valid.shape)}"
            )
        targets = prepare_targets(targets, logits, text_valid)
        norms, dn_norms = self._normalisers(targets, dn_meta, logits.device)

        losses = {}
        for suffix, out in _matching_sets(outputs):
            indices = self.matcher(out, targets)  # every layer is matched on its own predictions
            losses.update(self._set_losses(out, targets, indices, norms, text_valid, suffix))
        losses.update(self._dn_losses(outputs, targets, dn_meta, dn_norms, text_valid))
        return losses

    def match(self, outputs: Dict, targets: Sequence[Dict[str, Tensor]]) -> List[MatchIndices]:
        """The Hungarian assignment of one prediction set (``pred_logits`` (B, Q, T), ``pred_boxes``,
        ``pred_masks``) to the B targets, as training makes it: per image (query index, target
        index) int64 CPU tensors. The mask cost samples random points from torch's global RNG."""
        return self.matcher(outputs, prepare_targets(targets, outputs["pred_logits"]))

    def _set_losses(
        self,
        out: Dict,
        targets,
        indices: List[MatchIndices],
        norms: Tensor,
        text_valid: Tensor,
        suffix: str,
        kinds: Sequence[str] = DN_LOSS_KINDS,
    ) -> Dict[str, Tensor]:
        """Weighted losses of one prediction set. norms: (3,) class / box / mask normalisers."""
        raw = {}
        if "labels" in kinds:
            raw["loss_ce"] = (
                class_focal_loss(
                    out["pred_logits"],
                    text_valid,
                    indices,
                    targets,
                    alpha=self.weights.focal_alpha,
                    gamma=self.weights.focal_gamma,
                )
                / norms[0]
            )
        if "boxes" in kinds and "pred_boxes" in out:
            l1, giou = box_losses(out["pred_boxes"], indices, targets)
            raw["loss_bbox"], raw["loss_giou"] = l1 / norms[1], giou / norms[1]
        if "masks" in kinds and "pred_masks" in out:
            bce, dice = mask_losses(
                out["pred_masks"],
                indices,
                targets,
                num_points=self.num_points,
                oversample_ratio=self.oversample_ratio,
                importance_sample_ratio=self.importance_sample_ratio,
            )
            raw["loss_mask"], raw["loss_dice"] = bce / norms[2], dice / norms[2]
        return {name + suffix: self.weight_dict[name] * value for name, value in raw.items()}

    def _dn_losses(
        self, outputs: Dict, targets, dn_meta: Optional[Dict], norms: Tensor, text_valid: Tensor
    ) -> Dict[str, Tensor]:
        """Losses of the DN queries under their fixed assignment (``dn_meta['dn_indices']``)."""
        if dn_meta is None or "dn_outputs" not in outputs:
            if dn_meta is not None or "dn_outputs" in outputs:
                raise KeyError("outputs['dn_outputs'] and the dn_meta argument must come together")
            return self._dn_placeholders(outputs) if self.denoising else {}
        dn_out = outputs["dn_outputs"]
        num_dn = dn_out["pred_logits"].shape[1]
        if num_dn != dn_meta["num_dn_queries"]:
            raise ValueError(
                f"outputs['dn_outputs']['pred_logits'] has {num_dn} queries but "
                f"dn_meta['num_dn_queries'] is {dn_meta['num_dn_queries']}"
            )
        indices = dn_meta["dn_indices"]
        args = (targets, indices, norms, text_valid)
        losses = self._set_losses(dn_out, *args, "_dn", self.dn_losses)
        for i, aux in enumerate(dn_out.get("aux_outputs", [])):
            losses.update(self._set_losses(aux, *args, f"_dn_{i}", self.dn_losses))
        return losses

    def _dn_placeholders(self, outputs: Dict) -> Dict[str, Tensor]:
        """Zero DN losses with the keys a DN batch would give, tied to the graph (for DDP)."""
        zero = outputs["pred_logits"].sum() * 0.0
        # The DN decoder output mirrors the matching one: same layers, same prediction keys.
        sets = [("_dn", outputs)] + [
            (f"_dn_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs", []))
        ]
        return {
            name + suffix: zero
            for suffix, out in sets
            for kind in self.dn_losses
            if _PRED_KEY[kind] in out
            for name in _LOSS_NAMES[kind]
        }

    @staticmethod
    def _normalisers(
        targets, dn_meta: Optional[Dict], device: torch.device
    ) -> Tuple[Tensor, Tensor]:
        """(3,) and (3,) class / box / mask normalisers for matching and DN sets.

        One all-reduce per call, whether or not this worker has DN, so workers stay in step.
        """
        per_image = [
            [t["labels"].numel(), int(t["has_box"].sum()), int(t["has_mask"].sum())]
            for t in targets
        ]
        local = torch.tensor(per_image, dtype=torch.float32, device=device).sum(0)
        groups = dn_meta["num_groups"] if dn_meta is not None else 0
        counts = torch.cat([local, local * groups])
        world = comm.get_world_size()
        if world > 1:
            torch.distributed.all_reduce(counts)
        counts = (counts / world).clamp(min=1.0)
        return counts[:3], counts[3:]
