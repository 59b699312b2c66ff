"""Normalisation helpers."""
import math

from torch import nn


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides `channels` (32 at 256)."""
    groups = math.gcd(channels, max_groups)
    return nn.GroupNorm(groups, channels)
