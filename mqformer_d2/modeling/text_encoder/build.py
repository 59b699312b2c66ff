"""The text-encoder registry."""
from detectron2.utils.registry import Registry

TEXT_ENCODER_REGISTRY = Registry("MQFORMER_TEXT_ENCODER")
TEXT_ENCODER_REGISTRY.__doc__ = """
Text encoders of MQ-Former, selected by MODEL.MQFORMER.TEXT_ENCODER.NAME.

A registered class is called as `cls(cfg)` (a `@configurable` constructor) and returns an `nn.Module` with
`forward(texts: Sequence[str], use_templates: bool = False) -> Tensor (T, MODEL.MQFORMER.HIDDEN_DIM)`
(one embedding per text, in the order given) and an attribute `output_dim`.
"""


def build_text_encoder(cfg):
    """Build the text encoder named by MODEL.MQFORMER.TEXT_ENCODER.NAME."""
    return TEXT_ENCODER_REGISTRY.get(cfg.MODEL.MQFORMER.TEXT_ENCODER.NAME)(cfg)
