"""Building blocks shared by the model's components."""
from .feed_forward import ResidualFeedForward
from .ms_deform_attn import (
    MSDeformAttn,
    extension_available,
    ms_deform_attn_compiled,
    ms_deform_attn_pytorch,
    multi_scale_deformable_attention,
)

__all__ = [
    "ResidualFeedForward",
    "MSDeformAttn",
    "extension_available",
    "ms_deform_attn_compiled",
    "ms_deform_attn_pytorch",
    "multi_scale_deformable_attention",
]
