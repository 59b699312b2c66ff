"""Fixtures of the exemplar tests: a tiny model with an exemplar encoder, and a small copy of the
synthetic benchmark with enough objects per class to draw 2 exemplars of each."""
import pytest
from exemplar_models import exemplar_model
from helpers import SHAPES_SEED

from mqformer_d2.data.shapes import ShapesBenchmarkConfig, generate_shapes_benchmark, register_shapes_benchmark

EXEMPLAR_SHAPES_SIZES = dict(train_images=12, val_images=2, detection_train_images=1, detection_val_images=1,
                             foreground_train_images=1, foreground_val_images=1, seginw_train_images=12,
                             seginw_val_images=2)


@pytest.fixture(scope="module")
def tiny_exemplar_model():
    return exemplar_model()


@pytest.fixture(scope="module")
def exemplar_shapes(tmp_path_factory):
    """A small benchmark registered as mqformer_shapes_* for the module's tests; its root."""
    root = str(tmp_path_factory.mktemp("exemplar_shapes"))
    generate_shapes_benchmark(root, seed=SHAPES_SEED, workers=1, **EXEMPLAR_SHAPES_SIZES)
    register_shapes_benchmark(root, ShapesBenchmarkConfig(seed=SHAPES_SEED, **EXEMPLAR_SHAPES_SIZES))
    try:
        yield root
    finally:
        register_shapes_benchmark()
