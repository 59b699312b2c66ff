"""Building blocks shared by the model's components (as detectron2.layers keeps get_norm, ShapeSpec):
attention and feed-forward blocks, multi-scale deformable attention, the MLP, GroupNorm, sine
position embeddings, box helpers and the token-centre grid of multi-scale maps."""
from .attention import ResidualAttention
from .box_utils import (
    cxcywh_to_xyxy,
    inverse_sigmoid,
    mask_boxes_in_image,
    masks_to_normalized_boxes,
    masks_to_pixel_boxes,
    xyxy_to_cxcywh,
)
from .feed_forward import ResidualFeedForward
from .mlp import MLP
from .ms_deform_attn import (
    MSDeformAttn,
    extension_available,
    ms_deform_attn_compiled,
    ms_deform_attn_pytorch,
    multi_scale_deformable_attention,
)
from .norm import group_norm
from .sine_embeddings import box_position_embedding, feature_map_position_embedding
from .token_grid import SpatialShapes, level_shapes, shapes_tensor, token_centers

__all__ = [
    "ResidualAttention",
    "ResidualFeedForward",
    "MLP",
    "mask_boxes_in_image",
    "MSDeformAttn",
    "extension_available",
    "ms_deform_attn_compiled",
    "ms_deform_attn_pytorch",
    "multi_scale_deformable_attention",
    "group_norm",
    "box_position_embedding",
    "feature_map_position_embedding",
    "cxcywh_to_xyxy",
    "xyxy_to_cxcywh",
    "inverse_sigmoid",
    "masks_to_normalized_boxes",
    "masks_to_pixel_boxes",
    "token_centers",
    "level_shapes",
    "SpatialShapes",
    "shapes_tensor",
]
