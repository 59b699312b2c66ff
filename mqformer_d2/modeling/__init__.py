"""The model, in data-flow order: backbone -> pixel decoder -> mixed-query decoder -> heads ->
matcher / criterion (training) or post-processing (inference). Importing registers everything."""
from . import backbone, decoder, meta_arch, pixel_decoder, text_encoder
from .checkpoint import MQFormerCheckpointer
from .meta_arch import MQFormer
