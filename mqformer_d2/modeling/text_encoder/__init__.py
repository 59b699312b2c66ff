"""Text encoders: a list of texts -> one embedding per text at the decoder width.

Registry contract: `TEXT_ENCODER_REGISTRY.get(name)(cfg)` returns an `nn.Module` that is called as
`encoder(texts: Sequence[str], use_templates: bool = False) -> Tensor (T, HIDDEN_DIM)`.
"""
from .build import TEXT_ENCODER_REGISTRY, build_text_encoder
from .open_clip_text import TINY_TEXT_MODEL_NAME, OpenCLIPTextEncoder, import_open_clip

__all__ = ["TEXT_ENCODER_REGISTRY", "build_text_encoder", "OpenCLIPTextEncoder", "TINY_TEXT_MODEL_NAME",
           "import_open_clip"]
