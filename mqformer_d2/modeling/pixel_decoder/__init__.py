"""Pixel decoders: backbone features -> multi-scale memory + stride-4 mask features."""
from .build import PIXEL_DECODER_REGISTRY, build_pixel_decoder
from .deformable_encoder import DeformableEncoder, DeformableEncoderLayer
from .msdeform_pixel_decoder import MSDeformAttnPixelDecoder, PixelDecoderOutput

__all__ = [
    "PIXEL_DECODER_REGISTRY",
    "build_pixel_decoder",
    "DeformableEncoder",
    "DeformableEncoderLayer",
    "MSDeformAttnPixelDecoder",
    "PixelDecoderOutput",
]
