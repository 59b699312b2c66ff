"""The pixel-decoder registry."""
from detectron2.utils.registry import Registry

PIXEL_DECODER_REGISTRY = Registry("MQFORMER_PIXEL_DECODER")
PIXEL_DECODER_REGISTRY.__doc__ = """
Pixel decoders of MQ-Former, selected by MODEL.MQFORMER.PIXEL_DECODER.NAME.

A registered class is called as `cls(cfg, input_shape)` (a `@configurable` constructor), where
`input_shape` is the backbone's `output_shape()`, and returns an `nn.Module` with
`forward(features: Dict[str, Tensor], padding_mask: Tensor (B, H, W) bool) -> PixelDecoderOutput`.
"""


def build_pixel_decoder(cfg, input_shape):
    """Build the pixel decoder named by MODEL.MQFORMER.PIXEL_DECODER.NAME."""
    return PIXEL_DECODER_REGISTRY.get(cfg.MODEL.MQFORMER.PIXEL_DECODER.NAME)(cfg, input_shape)
