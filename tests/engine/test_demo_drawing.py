"""The demo's drawings: every task the model has, one label per object, a title, small images
upscaled, counts and warnings, default prompts, and stuff prompts in panoptic outputs."""
import logging

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances

from helpers import TINY_CONFIG, TINY_OPTIONS, load_script, tiny_config
from mqformer_d2 import MQFormerPredictor
from mqformer_d2.engine.visualization import MIN_DRAWING_SIDE, distinct_instances, drawing_scale, render

torch.set_num_threads(2)
TEST_DATASET = "mqformer_shapes_val_panoptic"  # registered on import; only its metadata is read


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return MQFormerPredictor(tiny_config("DATASETS.TEST", f"('{TEST_DATASET}',)"))


@pytest.fixture(scope="module")
def image():
    return np.random.RandomState(0).randint(0, 256, (60, 80, 3), dtype=np.uint8)


def test_near_duplicate_instances_are_drawn_once():
    instances = Instances((50, 50), pred_boxes=Boxes(torch.tensor([[0, 0, 20, 20], [1, 0, 20, 20], [0, 0, 20, 20],
                                                                    [30, 30, 45, 45.]])),
                          scores=torch.tensor([0.6, 0.9, 0.7, 0.8]), pred_classes=torch.tensor([3, 3, 1, 3]))
    kept = distinct_instances(instances, 0.5)
    # the second box duplicates the first (same prompt); the third is another prompt
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.8])


def test_small_images_are_upscaled_large_ones_not():
    assert drawing_scale(128, 128) == MIN_DRAWING_SIDE / 128
    assert drawing_scale(600, 900) == 1.0


@pytest.mark.parametrize("task", ["instance", "detection", "semantic", "panoptic", "referring", "foreground", "all"])
def test_every_task_is_drawn_titled_and_counted(predictor, image, task):
    prompts = ["circle", "sky"] if task != "foreground" else ["foreground"]
    prediction = predictor(image, prompts=prompts, task=task)
    drawing = render(image[:, :, ::-1], prediction, prompts, task, score_threshold=0.0)
    columns = 2 if task == "all" else 1
    assert drawing.image.shape[1] == columns * MIN_DRAWING_SIDE and drawing.image.dtype == np.uint8
    assert drawing.image.shape[0] > 300 * (2 if task == "all" else 1)  # 60 px rows at scale 5, plus titles
    assert (drawing.image[:3] == 255).all()  # the title strip starts white
    assert drawing.objects >= (0 if task == "referring" else 1) and (drawing.note == "") == (drawing.objects > 0)


def test_a_drawing_with_nothing_says_why(predictor, image):
    prediction = predictor(image, prompts=["circle"], task="instance")
    drawing = render(image[:, :, ::-1], prediction, ["circle"], "instance", score_threshold=1.0)
    assert drawing.objects == 0 and "no instance scored above the threshold 1 (best score" in drawing.note


def test_stuff_prompts_become_stuff_segments(predictor, image):
    _, segments = predictor(image, prompts=["circle", "zebra"], task="panoptic", stuff_prompts=["zebra"])["panoptic_seg"]
    assert segments and all(s["isthing"] == (s["category_id"] == 0) for s in segments)
    zebras = [s for s in segments if s["category_id"] == 1]
    assert len(zebras) <= 1  # stuff: one segment per prompt


def test_the_demo_warns_without_weights_and_when_it_draws_nothing(image, tmp_path, caplog):
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), image)
    logging.getLogger("mqformer_d2").addHandler(caplog.handler)  # detectron2's logger does not propagate
    try:
        load_script("demo/demo.py").main([
            "--config-file", TINY_CONFIG, "--input", str(tmp_path / "photo.png"), "--output", str(tmp_path / "vis"),
            "--confidence-threshold", "1", "--opts", *map(str, TINY_OPTIONS), "DATASETS.TEST", f"('{TEST_DATASET}',)"])
    finally:
        logging.getLogger("mqformer_d2").removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("MODEL.WEIGHTS is empty" in w for w in warnings)
    assert any("photo.png: drew nothing (instance): no instance scored above the threshold 1" in w for w in warnings)


def test_default_prompts_and_stuff_checks():
    demo = load_script("demo/demo.py")
    cfg = tiny_config("DATASETS.TEST", f"('{TEST_DATASET}',)")
    assert demo.default_prompts(cfg)[-4:] == ["sky", "grass", "water", "sand"]
    assert demo.default_prompts(tiny_config("MODEL.MQFORMER.TEST.VOCABULARY", "['kettle']")) == ["kettle"]
    with pytest.raises(ValueError, match="no prompts: pass --prompts"):
        demo.default_prompts(tiny_config())
    assert demo.stuff_prompts("sky", ",", ["cat", "sky"]) == ["sky"]
    with pytest.raises(ValueError, match=r"--stuff \['grass'\] are not among the prompts"):
        demo.stuff_prompts("grass", ",", ["cat", "sky"])
