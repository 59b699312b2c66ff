"""A tiny MQ-Former (random weights) exported to ONNX once for the module's tests."""
import pytest
import torch
from detectron2.modeling import build_model
from export_vocabulary import EXPORT_STUFF, EXPORT_VOCABULARY
from helpers import tiny_config

from mqformer_d2.export import export_model

TEST_DATASET = "mqformer_shapes_val_instance"  # registered on import; only its metadata is read


def export_config(*options):
    return tiny_config("DATASETS.TEST", f"('{TEST_DATASET}',)", *options)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    cfg = export_config()
    return cfg, build_model(cfg).eval()


@pytest.fixture(scope="module")
def onnx_export(tiny_model, tmp_path_factory):
    """(cfg, model, ExportFiles) of the tiny model exported to ONNX for EXPORT_VOCABULARY."""
    cfg, model = tiny_model
    folder = str(tmp_path_factory.mktemp("export") / "onnx")
    return cfg, model, export_model(model, cfg, EXPORT_VOCABULARY, folder, stuff=EXPORT_STUFF)
