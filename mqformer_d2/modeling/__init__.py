"""The model, in data-flow order: backbone -> pixel decoder -> mixed-query decoder -> heads ->
the training objective (`criterion/`) or post-processing (inference). Importing registers everything.
Weights files are loaded by `mqformer_d2.checkpoint.MQFormerCheckpointer`."""
import warnings

from . import backbone, decoder, meta_arch, pixel_decoder, text_encoder
from .meta_arch import MQFormer


def __getattr__(name: str):
    # `mqformer_d2.modeling.MQFormerCheckpointer` was the documented path before weights loading got
    # its own package; user code importing it keeps working, with a warning, until the next release.
    if name == "MQFormerCheckpointer":
        warnings.warn("mqformer_d2.modeling.MQFormerCheckpointer moved to mqformer_d2.checkpoint.MQFormerCheckpointer",
                      DeprecationWarning, stacklevel=2)
        from ..checkpoint import MQFormerCheckpointer

        globals()[name] = MQFormerCheckpointer  # warn once, not on every `from ... import`
        return MQFormerCheckpointer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
