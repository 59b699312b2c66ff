"""Fixtures of the matting tests: a tiny matting split (32-pixel images) and a tiny refinement
trained for two steps, both built in a temporary folder."""
import os

import pytest
import torch

from mqformer_d2.data.shapes.matting_split import MattingSplitConfig, load_matting_split
from mqformer_d2.matting.training import TrainingSettings, train_refiner

TINY_SPLIT = MattingSplitConfig(seed=0, image_size=32, train_images=3, val_images=2)


@pytest.fixture(scope="session")
def matting_root(tmp_path_factory):
    """A datasets root holding a tiny mqformer_shapes_matting."""
    root = str(tmp_path_factory.mktemp("matting_data"))
    load_matting_split(root, TINY_SPLIT, "train")  # generates both parts
    return root


@pytest.fixture(scope="session")
def val_records(matting_root):
    return load_matting_split(matting_root, TINY_SPLIT, "val")


@pytest.fixture(scope="session")
def refiner_weights(matting_root, tmp_path_factory):
    """Weights of a width-4 refinement on the colour prior (no pymatting) trained for two steps on
    16-pixel crops of the tiny split."""
    torch.set_num_threads(1)
    records = load_matting_split(matting_root, TINY_SPLIT, "train")
    output = str(tmp_path_factory.mktemp("refiner"))
    settings = TrainingSettings(steps=2, batch_size=2, width=4, context_blocks=1, prior="colour",
                                crop_size=16)
    return train_refiner(records, output, settings)
