"""Input images are checked and converted explicitly: 16-bit files scaled, predictor arrays checked."""
import uuid

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.images import as_uint8_bgr, read_image
from mqformer_d2.data.unified_mapper import UnifiedDatasetMapper

LEVELS = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # -> 0, 1, 128, 255


@pytest.fixture
def sixteen_bit_png(tmp_path):
    path = tmp_path / "gray16.png"
    Image.fromarray(np.repeat(LEVELS, 3, axis=0)).save(path)
    assert Image.open(path).mode.startswith("I")  # really stored as 16-bit
    return str(path)


def test_a_16_bit_png_is_scaled_not_clipped(sixteen_bit_png):
    image = read_image(sixteen_bit_png, format="BGR")
    assert image.dtype == np.uint8 and image.shape == (3, 4, 3)
    assert image[0, :, 0].tolist() == [0, 1, 128, 255] and (image == image[:, :, :1]).all()


def test_the_data_loader_scales_16_bit_pngs(sixteen_bit_png):
    name = f"test_images_{uuid.uuid4().hex[:8]}"
    record = {"file_name": sixteen_bit_png, "height": 3, "width": 4, "image_id": 0, "annotations": []}
    DatasetCatalog.register(name, lambda: [dict(record)])
    MetadataCatalog.get(name).set(task="instance", text_prompts=["cup"])
    try:
        cfg = add_mqformer_config(get_cfg())
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 0, 0  # no resize
        image = UnifiedDatasetMapper(cfg, False)(dict(record, dataset_name=name))["image"]
        assert image[0, 0].tolist() == [0, 1, 128, 255]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_predictor_arrays_uint8_pass_unchanged_16_bit_and_gray_converted():
    image = np.random.RandomState(0).randint(0, 256, (5, 6, 3), dtype=np.uint8)
    assert as_uint8_bgr(image) is image
    assert as_uint8_bgr(np.repeat(LEVELS[:, :, None], 3, axis=2))[0, :, 1].tolist() == [0, 1, 128, 255]
    gray = as_uint8_bgr(image[:, :, 0])
    assert gray.shape == (5, 6, 3) and (gray == image[:, :, :1]).all()


@pytest.mark.parametrize("bad,message", [
    (np.random.rand(5, 6, 3).astype(np.float32), r"float32.*\* 255"),
    (np.zeros((5, 6, 4), np.uint8), "alpha"),
    (np.zeros((5, 6, 3), np.int64), "int64"),
])
def test_predictor_refuses_ambiguous_arrays_with_a_message(bad, message):
    with pytest.raises(ValueError, match=message):
        as_uint8_bgr(bad, "original_image")


def test_the_predictor_refuses_a_float_image(monkeypatch):
    from mqformer_d2.engine.predictor import MQFormerPredictor

    predictor = MQFormerPredictor.__new__(MQFormerPredictor)  # only model_inputs is exercised
    with pytest.raises(ValueError, match="original_image has dtype float64"):
        predictor.model_inputs(np.random.rand(8, 8, 3))
