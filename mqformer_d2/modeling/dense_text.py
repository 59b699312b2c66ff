"""Dense text supervision of the encoder tokens: an auxiliary training loss (not in the paper).

Why: the Hungarian-matched class loss names each target once per prediction set, so a network
trained from scratch gets a few class labels per image, and on the synthetic benchmark it learned
to find and segment shapes long before it could name them (docs/results.md). This loss labels
every encoder token of every level with the texts whose target mask covers the token's centre,
and scores each token against the batch's texts with its own text-similarity classifier: hundreds
of class labels per image for the backbone, the encoder and the text tower. It has its own
classifier, so it does not change how the conditional queries are selected, and it costs nothing
at inference (the head is not run there).

Images with a box-only target (detection data) are left out: outside the masks we know, a token
could still belong to the unmasked object.
"""
from typing import Dict, Sequence

import torch
from detectron2.utils import comm
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from .decoder.prediction_heads import TextSimilarityClassifier
from .pixel_decoder import PixelDecoderOutput


def token_text_labels(masks: Tensor, labels: Tensor, spatial_shapes: Tensor, num_texts: int) -> Tensor:
    """Which texts cover each encoder token's centre.

    Args:
        masks: (K, Hpad, Wpad) bool target masks over the padded image.
        labels: (K,) int64 text index of each target.
        spatial_shapes: (L, 2) int64 (H_l, W_l) of the levels; each level spans the padded image.
        num_texts: T.

    Returns:
        (S, T) float, 1 where a target of that text covers the token's centre (S = sum H_l W_l).
    """
    height, width = masks.shape[-2:]
    per_level = []
    for level_height, level_width in spatial_shapes.tolist():
        rows = ((torch.arange(level_height, device=masks.device) + 0.5) * height / level_height).long()
        cols = ((torch.arange(level_width, device=masks.device) + 0.5) * width / level_width).long()
        per_level.append(masks[:, rows][:, :, cols].flatten(1))  # (K, H_l * W_l)
    covered = torch.cat(per_level, 1).float()  # (K, S)
    out = covered.new_zeros(num_texts, covered.shape[1]).index_add_(0, labels, covered)
    return (out > 0).to(covered.dtype).t()


class DenseTextSupervision(nn.Module):
    """Scores every encoder token against the texts and returns the weighted dense focal loss.

    Args:
        dim: token width C.
        weight: loss weight (MODEL.MQFORMER.LOSS.DENSE_TEXT_WEIGHT).
        focal_alpha, focal_gamma: sigmoid focal loss parameters (the class loss's).
    """

    def __init__(self, *, dim: int, weight: float, focal_alpha: float, focal_gamma: float):
        super().__init__()
        self.classifier = TextSimilarityClassifier(dim)
        self.weight = weight
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def forward(self, pixel: PixelDecoderOutput, text_embeddings: Tensor, text_valid: Tensor,
                targets: Sequence[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """
        Args:
            pixel: the pixel decoder's output; memory (B, S, C), padding_mask (B, S) (True = pad).
            text_embeddings: (T, C); text_valid: (B, T) bool, each image's vocabulary.
            targets: B target dicts (labels (K,), masks (K, Hpad, Wpad) bool, has_mask (K,)).

        Returns:
            {"loss_dense_text": weighted scalar}: focal loss summed over the (token, text) pairs
            of the images whose targets all have masks, divided by their positive pairs.
        """
        logits = self.classifier(pixel.memory, text_embeddings).float()  # (B, S, T)
        labels = torch.zeros_like(logits)
        weights = (~pixel.padding_mask)[:, :, None] & text_valid[:, None, :]  # (B, S, T)
        for b, target in enumerate(targets):
            if not bool(target["has_mask"].all()):
                weights[b] = False
            elif target["labels"].numel() > 0:
                labels[b] = token_text_labels(target["masks"], target["labels"], pixel.spatial_shapes,
                                              logits.shape[-1])
        loss = sigmoid_focal_loss(logits, labels, alpha=self.focal_alpha, gamma=self.focal_gamma,
                                  reduction="none")
        return {"loss_dense_text": self.weight * (loss * weights).sum() / self._num_positives(labels, weights)}

    @staticmethod
    def _num_positives(labels: Tensor, weights: Tensor) -> Tensor:
        """Positive (token, text) pairs of the batch, averaged over workers, at least 1."""
        count = (labels * weights).sum().detach()
        if comm.get_world_size() > 1:
            torch.distributed.all_reduce(count)
            count = count / comm.get_world_size()
        return count.clamp(min=1.0)
