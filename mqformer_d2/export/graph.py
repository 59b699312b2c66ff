"""The part of MQ-Former that is exported: everything between the resized image and the raw
predictions, with the text embeddings as an input instead of the text encoder."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..modeling.text_batch import TextBatch


class ExportableMQFormer(nn.Module):
    """A trained `MQFormer` (eval mode) from the resized image to its raw predictions.

    Does what `MQFormer.inference` does for one image before post-processing: normalise, pad to
    the size divisibility (zeros after normalisation, like `ImageList`), backbone, pixel decoder,
    mixed-query decoder, and the region classifier's fusion when the model has one.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone = model.backbone
        self.pixel_decoder = model.pixel_decoder
        self.decoder = model.decoder
        self.region_classifier = model.region_classifier
        self.size_divisibility = model.size_divisibility
        self.register_buffer("pixel_mean", model.pixel_mean.clone(), persistent=False)
        self.register_buffer("pixel_std", model.pixel_std.clone(), persistent=False)

    def forward(self, image: Tensor, image_size: Tensor, text_embeddings: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            image: (1, 3, Hpad, Wpad) float32, resized, 0-255, in the model's INPUT.FORMAT channel
                order, padded at the bottom and right to multiples of `size_divisibility` (the
                padding's values do not matter: it is zeroed after normalisation, as `ImageList` does).
            image_size: (2,) int64, the (h, w) of the image inside the padding.
            text_embeddings: (T, C) the vocabulary's projected text embeddings (`ExportedVocabulary`).

        Returns:
            logits (1, Q, T), mask logits (1, Q, Hpad/4, Wpad/4), boxes (1, Q, 4) normalised
            (cx, cy, w, h) of the unpadded image.
        """
        padding_mask = self._padding_mask(image, image_size)
        image = ((image - self.pixel_mean) / self.pixel_std).masked_fill(padding_mask[:, None], 0.0)
        num_texts = text_embeddings.shape[0]
        text = TextBatch([], text_embeddings, torch.ones(1, num_texts, dtype=torch.bool, device=image.device),
                         [torch.arange(num_texts, device=image.device)])
        pixel = self.pixel_decoder(self.backbone(image), padding_mask)
        outputs = self.decoder(pixel, text)
        logits = outputs["pred_logits"]
        if self.region_classifier is not None and self.region_classifier.test_weight > 0:
            logits = self.region_classifier.fuse(outputs, pixel.mask_features, pixel.mask_valid_ratio, text)
        return logits, outputs["pred_masks"], outputs["pred_boxes"]

    @staticmethod
    def _padding_mask(image: Tensor, image_size: Tensor) -> Tensor:
        """(1, Hpad, Wpad) bool, True outside the top-left (h, w) = image_size."""
        rows = torch.arange(image.shape[-2], device=image.device)[:, None] >= image_size[0]
        cols = torch.arange(image.shape[-1], device=image.device)[None, :] >= image_size[1]
        return (rows | cols)[None]


def pad_to_multiple(image: Tensor, divisor: int) -> Tensor:
    """(1, 3, h, w) -> (1, 3, Hpad, Wpad), zeros at the bottom and right, sides multiples of `divisor`."""
    height, width = image.shape[-2:]
    return F.pad(image, (0, -width % divisor, 0, -height % divisor))
