"""Query decoders: encoder memory + text embeddings -> per-query class / box / mask predictions."""
from .build import DECODER_REGISTRY, build_decoder
from .mixed_query_decoder import CONDITIONAL, LEARNABLE, MixedQueryDecoder
from .mixed_query_layer import MixedQueryDecoderLayer
from .prediction_heads import PredictionHeads, TextSimilarityClassifier
from .query_selection import ConditionalQuerySelector

__all__ = [
    "DECODER_REGISTRY",
    "build_decoder",
    "MixedQueryDecoder",
    "MixedQueryDecoderLayer",
    "PredictionHeads",
    "TextSimilarityClassifier",
    "ConditionalQuerySelector",
    "LEARNABLE",
    "CONDITIONAL",
]
