"""The query-decoder registry."""
from detectron2.utils.registry import Registry

DECODER_REGISTRY = Registry("MQFORMER_DECODER")
DECODER_REGISTRY.__doc__ = """
Query decoders of MQ-Former, selected by MODEL.MQFORMER.DECODER.NAME.

A registered class is called as `cls(cfg)` (a `@configurable` constructor) and returns an
`nn.Module` with `forward(pixel: PixelDecoderOutput, text: TextBatch, denoising:
Optional[DenoisingQueries] = None) -> dict` holding the predictions described in docs/model.md
(pred_logits, pred_boxes, pred_masks, aux_outputs, ...); `TextBatch` is `modeling.text_batch`'s,
`DenoisingQueries` the prefix `modeling.denoising.build_denoising_queries` returns.
"""


def build_decoder(cfg):
    """Build the query decoder named by MODEL.MQFORMER.DECODER.NAME."""
    return DECODER_REGISTRY.get(cfg.MODEL.MQFORMER.DECODER.NAME)(cfg)
