"""``mqformer_shapes``: a built-in synthetic benchmark exercising every task of MQ-Former.

Coloured, rotated, partly occluded shapes (things) on textured irregular regions (stuff), with
instance, semantic, panoptic, referring, foreground, detection-only and SeginW-format
open-vocabulary splits, and a matting split (``mqformer_shapes_matting``: soft-edged objects with
exact alpha mattes, `matting_split`). Generated deterministically from a seed on first load and cached under
``$DETECTRON2_DATASETS/mqformer_shapes``; see docs/benchmark_shapes.md.

Importing this package registers the datasets (lazily: nothing is generated until a dataset is
loaded). Generate explicitly with ``generate_shapes_benchmark(root, seed)`` or
``python -m mqformer_d2.data.shapes --root datasets --seed 0``.
"""
from .benchmark import (
    GENERATOR_VERSION,
    ShapesBenchmarkConfig,
    ensure_benchmark,
    generate_shapes_benchmark,
)
from .matting_split import MattingSplitConfig, ensure_matting_split, register_matting_split
from .register import register_shapes_benchmark
from .vocabulary import ALL_CLASSES, COLOR_NAMES, STUFF_CLASSES, SUITE, THING_CLASSES

register_shapes_benchmark()
register_matting_split()

__all__ = [
    "ALL_CLASSES", "COLOR_NAMES", "GENERATOR_VERSION", "STUFF_CLASSES", "SUITE", "THING_CLASSES",
    "MattingSplitConfig", "ShapesBenchmarkConfig", "ensure_benchmark", "ensure_matting_split",
    "generate_shapes_benchmark", "register_matting_split", "register_shapes_benchmark",
]
