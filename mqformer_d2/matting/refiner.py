"""`MattingRefiner`: a small AEMatter-style network, image + trimap -> alpha matte.

AEMatter (Liu et al., "Revisiting Context Aggregation for Image Matting", 2024) shows that a plain
U-shaped convolutional matting network gets most of its accuracy from aggregating context at the
bottleneck, with attention that sees the whole image, while the skip connections carry the fine
detail back up. This is a small version of that design for the benchmark's image sizes:

    input (B, 13, H, W): RGB normalised (3) + one-hot trimap (3: background, unknown, foreground)
                        + the `colour_prior`: foreground and background colours sampled from
                        the known pixels nearby (3 + 3) and the alpha they imply (1);
                        H and W multiples of 8
    encoder: 3x3 conv blocks at strides 1, 2, 4, 8 with widths w, 2w, 4w, 8w
    bottleneck (B, 8w, H/8, W/8): `ContextBlock`s, self-attention over every bottleneck position
                        (global context, as AEMatter's appearance-enhanced axis learning) after a
                        depthwise convolution that makes the positions known to attention
    decoder: upsample x2, concatenate the encoder's feature of that stride, conv block, down to
                        stride 1
    head: (B, 1, H, W) alpha = clamp(prior alpha + conv, 0, 1): a correction of the prior's
                        alpha (the head starts at zero, so training starts from the prior). The
                        correction is added in alpha space, not to the prior's logit: where the
                        prior is exactly 0 or 1 (often, and often wrongly, for thin strands) a
                        logit would have no gradient

``prior="closed_form"``: the caller also gives the closed-form matting alpha of the same image
and trimap (`peers.closed_form_alpha`, computed outside the network with pymatting); it is a 14th
input channel and the alpha the head corrects, in place of the colour prior's.

The network predicts alpha at every pixel; callers set the trimap's known pixels (`trimap.clamp_known`).
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .colour_prior import colour_prior

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
SIZE_DIVISOR = 8
INPUT_CHANNELS = 13
PRIORS = ("colour", "closed_form")


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """Two 3x3 conv + BN + ReLU, the first with ``stride``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


class ContextBlock(nn.Module):
    """Pre-norm transformer block over all positions of a (B, C, h, w) map, with a depthwise 3x3
    conv as the position encoding (a conditional position encoding: no fixed size)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.position = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm_attention = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(),
                                 nn.Linear(2 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x + self.position(x)
        tokens = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
        normed = self.norm_attention(tokens)
        tokens = tokens + self.attention(normed, normed, normed, need_weights=False)[0]
        tokens = tokens + self.mlp(self.norm_mlp(tokens))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class MattingRefiner(nn.Module):
    """See the module docstring. ``width``: channels at full resolution (w);
    ``context_blocks``: transformer blocks at the bottleneck; ``prior``: the alpha corrected,
    "colour" (computed inside) or "closed_form" (given to `forward`)."""

    def __init__(self, width: int = 16, context_blocks: int = 2, prior: str = "colour"):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"MattingRefiner: prior must be one of {PRIORS}, got {prior!r}")
        self.width, self.context_blocks, self.prior = width, context_blocks, prior
        widths = [width, 2 * width, 4 * width, 8 * width]
        channels = INPUT_CHANNELS + (prior == "closed_form")
        self.encoders = nn.ModuleList([conv_block(channels, widths[0])] + [
            conv_block(widths[i - 1], widths[i], stride=2) for i in range(1, 4)])
        self.context = nn.Sequential(*[ContextBlock(widths[3]) for _ in range(context_blocks)])
        self.decoders = nn.ModuleList([conv_block(widths[i + 1] + widths[i], widths[i])
                                       for i in range(3)])
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def config(self) -> Dict[str, object]:
        """The constructor arguments (saved beside the weights)."""
        return {"width": self.width, "context_blocks": self.context_blocks, "prior": self.prior}

    def forward(self, image: torch.Tensor, trimap: torch.Tensor,
                prior_alpha: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            image: (B, 3, H, W) RGB in [0, 1]; H, W multiples of ``SIZE_DIVISOR``.
            trimap: (B, H, W) uint8 / long with 0 = background, 128 = unknown, 255 = foreground.
            prior_alpha: (B, H, W) closed-form alpha in [0, 1]; only (and always) for
                ``prior="closed_form"``.
        Returns:
            (B, H, W) alpha in [0, 1].
        """
        if image.shape[-2] % SIZE_DIVISOR or image.shape[-1] % SIZE_DIVISOR:
            raise ValueError(f"MattingRefiner: image size {tuple(image.shape[-2:])} must be a "
                             f"multiple of {SIZE_DIVISOR} (pad it first)")
        classes = torch.stack([trimap == 0, trimap == 128, trimap == 255], dim=1).to(image.dtype)
        fg_colour, bg_colour, prior = colour_prior(image, classes[:, :1], classes[:, 2:])
        inputs = [(image - self.mean) / self.std, classes, (fg_colour - self.mean) / self.std,
                  (bg_colour - self.mean) / self.std, prior]
        if (prior_alpha is not None) != (self.prior == "closed_form"):
            raise ValueError(f"MattingRefiner(prior={self.prior!r}): prior_alpha must be given "
                             "exactly when the prior is 'closed_form'")
        if prior_alpha is not None:
            prior = prior_alpha.unsqueeze(1).to(image.dtype)
            inputs.append(prior)
        x = torch.cat(inputs, dim=1)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        x = self.context(x)
        for level in (2, 1, 0):
            x = F.interpolate(x, size=skips[level].shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoders[level](torch.cat([x, skips[level]], dim=1))
        return (prior + self.head(x)).clamp(0, 1)[:, 0]
