"""Input images are checked and converted explicitly: 16-bit files scaled, predictor arrays checked."""
import uuid

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.data import transforms as T
from helpers import TINY_CONFIG, TINY_OPTIONS, load_script, tiny_config
from PIL import Image

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.images import ImageReadError, as_uint8_bgr, read_image
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


def _truncated_jpeg(path, size=(64, 96)):
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (*size, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # a copy cut short
    return str(path)


@pytest.fixture
def mapped():
    """mapped(record, task, is_train, augmentations) -> (the name of a one-record dataset with two
    prompts, a function mapping its record); the dataset is unregistered after the test."""
    names = []

    def register(record, task="instance", is_train=False, augmentations=()):
        name = f"test_images_{uuid.uuid4().hex[:8]}"
        names.append(name)
        DatasetCatalog.register(name, lambda: [dict(record)])
        MetadataCatalog.get(name).set(task=task, text_prompts=["cup", "plate"], ignore_label=255)
        mapper = UnifiedDatasetMapper(is_train, augmentations=list(augmentations), image_format="BGR")
        return name, lambda: mapper(dict(record, dataset_name=name))

    yield register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_a_truncated_jpeg_names_its_file(tmp_path):
    path = _truncated_jpeg(tmp_path / "cut.jpg")
    with pytest.raises(ImageReadError, match=f"cannot read image file {path}: image file is truncated"):
        read_image(path, format="BGR")


def test_the_data_loader_names_a_truncated_jpeg_from_its_worker(tmp_path, mapped):
    path = _truncated_jpeg(tmp_path / "cut.jpg")
    record = {"file_name": path, "height": 64, "width": 96, "image_id": 0, "annotations": []}
    name, _ = mapped(record)
    mapper = UnifiedDatasetMapper(False, augmentations=[], image_format="BGR")
    loader = build_detection_test_loader([dict(record, dataset_name=name)], mapper=mapper, num_workers=1)
    with pytest.raises(ImageReadError, match=f"cannot read image file {path}"):
        next(iter(loader))


def test_the_demo_names_a_truncated_input(tmp_path):
    demo = load_script("demo/demo.py")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good)
    bad = _truncated_jpeg(tmp_path / "bad.jpg")
    with pytest.raises(ImageReadError, match=f"cannot read image file {bad}"):
        demo.main(["--config-file", TINY_CONFIG, "--input", str(good), bad, "--output", str(tmp_path / "vis"),
                   "--prompts", "cup", "--cpu", "--opts", *map(str, TINY_OPTIONS)])


def test_a_semantic_label_outside_the_prompts_names_the_label_file(tmp_path, mapped):
    image, labels = tmp_path / "image.png", tmp_path / "labels.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    label_map = np.zeros((8, 8), np.uint8)
    label_map[:4] = 7  # 2 prompts: labels 0, 1 (and 255, ignored)
    Image.fromarray(label_map).save(labels)
    record = {"file_name": str(image), "sem_seg_file_name": str(labels), "height": 8, "width": 8, "image_id": 0}
    name, map_it = mapped(record, task="semantic", is_train=True)
    with pytest.raises(ValueError, match=f"dataset '{name}', label file {labels}: semantic label 7 is outside "
                                         "text_prompts \\(length 2\\) and is not its ignore_label 255"):
        map_it()


@pytest.mark.parametrize("shape", [(0, 0, 3), (2, 2000, 3), (2000, 2, 3)])
def test_the_predictor_says_an_image_is_too_small(shape):
    from mqformer_d2.engine.predictor import MQFormerPredictor

    predictor = MQFormerPredictor.__new__(MQFormerPredictor)  # only model_inputs is exercised
    predictor.cfg, predictor.input_format = tiny_config(), "RGB"
    with pytest.raises(ValueError, match=f"original_image is {shape[0]}x{shape[1]} pixels: .*(at least one pixel|"
                                         "too small)"):
        predictor.model_inputs(np.zeros(shape, np.uint8))


def test_the_data_loader_says_an_image_is_too_small_naming_it(tmp_path, mapped):
    path = tmp_path / "sliver.png"
    Image.fromarray(np.zeros((2, 2000, 3), np.uint8)).save(path)
    record = {"file_name": str(path), "height": 2, "width": 2000, "image_id": 0, "annotations": []}
    name, map_it = mapped(record, augmentations=[T.ResizeShortestEdge(64, 64)])
    with pytest.raises(ValueError, match=f"dataset '{name}', image {path} \\(2x2000 pixels\\): .* too small"):
        map_it()
