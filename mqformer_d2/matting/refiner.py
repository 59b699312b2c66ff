"""`MattingRefiner`: a small AEMatter-style network, image + trimap -> alpha matte.

AEMatter (Liu et al., "Revisiting Context Aggregation for Image Matting", 2024) shows that a plain
U-shaped convolutional matting network gets most of its accuracy from aggregating context at the
bottleneck, with attention that sees the whole image, while the skip connections carry the fine
detail back up. This is a small version of that design for the benchmark's image sizes:

    input (B, 6, H, W): RGB normalised (3) + one-hot trimap (3: background, unknown, foreground);
                        H and W multiples of 8
    encoder: 3x3 conv blocks at strides 1, 2, 4, 8 with widths w, 2w, 4w, 8w
    bottleneck (B, 8w, H/8, W/8): `ContextBlock`s, self-attention over every bottleneck position
                        (global context, as AEMatter's appearance-enhanced axis learning) after a
                        depthwise convolution that makes the positions known to attention
    decoder: upsample x2, concatenate the encoder's feature of that stride, conv block, down to
                        stride 1
    head: (B, 1, H, W) alpha = sigmoid(conv)

The network predicts alpha at every pixel; callers set the trimap's known pixels (`trimap.clamp_known`).
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
SIZE_DIVISOR = 8


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
    ``context_blocks``: transformer blocks at the bottleneck."""

    def __init__(self, width: int = 16, context_blocks: int = 2):
        super().__init__()
        self.width, self.context_blocks = width, context_blocks
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.encoders = nn.ModuleList([conv_block(6, widths[0])] + [
            conv_block(widths[i - 1], widths[i], stride=2) for i in range(1, 4)])
        self.context = nn.Sequential(*[ContextBlock(widths[3]) for _ in range(context_blocks)])
        self.decoders = nn.ModuleList([conv_block(widths[i + 1] + widths[i], widths[i])
                                       for i in range(3)])
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def config(self) -> Dict[str, int]:
        """The constructor arguments (saved beside the weights)."""
        return {"width": self.width, "context_blocks": self.context_blocks}

    def forward(self, image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: (B, 3, H, W) RGB in [0, 1]; H, W multiples of ``SIZE_DIVISOR``.
            trimap: (B, H, W) uint8 / long with 0 = background, 128 = unknown, 255 = foreground.
        Returns:
            (B, H, W) alpha in [0, 1].
        """
        if image.shape[-2] % SIZE_DIVISOR or image.shape[-1] % SIZE_DIVISOR:
            raise ValueError(f"MattingRefiner: image size {tuple(image.shape[-2:])} must be a "
                             f"multiple of {SIZE_DIVISOR} (pad it first)")
        classes = torch.stack([trimap == 0, trimap == 128, trimap == 255], dim=1).to(image.dtype)
        x = torch.cat([(image - self.mean) / self.std, classes], dim=1)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        x = self.context(x)
        for level in (2, 1, 0):
            x = F.interpolate(x, size=skips[level].shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoders[level](torch.cat([x, skips[level]], dim=1))
        return torch.sigmoid(self.head(x))[:, 0]
