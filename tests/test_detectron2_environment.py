"""The project's environment keeps detectron2's own API working, and the GPU training configs build
for CPU inference (issue 12, items 6 and 7)."""
import glob
import os

import cv2
import numpy as np
from helpers import ROOT, load_script

from mqformer_d2.engine import build_config


def test_detectron2_model_zoo_imports():
    from detectron2 import model_zoo  # needs pkg_resources: setuptools < 81 (requirements/constraints.txt)

    assert os.path.isfile(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))


def test_mixed_precision_configs_build_for_cpu_inference():
    for path in glob.glob(os.path.join(ROOT, "configs", "mqformer_*.yaml")):
        cfg = build_config(path, cpu=True)
        assert cfg.MODEL.DEVICE == "cpu", path


def test_demo_runs_the_r50_config_on_cpu(tmp_path):
    image = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    assert build_config(os.path.join(ROOT, "configs", "mqformer_R50.yaml"), cpu=True).SOLVER.AMP.ENABLED
    written = load_script("demo/demo.py").main([
        "--config-file", os.path.join(ROOT, "configs", "mqformer_R50.yaml"), "--cpu", "--input",
        str(tmp_path / "photo.png"), "--output", str(tmp_path / "vis"), "--prompts", "cat,dog", "--task", "instance",
        # The tiny text tower and small test images keep this fast; the R50 model itself is built.
        "--opts", "MODEL.MQFORMER.TEXT_ENCODER.MODEL_NAME", "mqformer-tiny-text", "INPUT.MIN_SIZE_TEST", "64",
        "INPUT.MAX_SIZE_TEST", "96"])
    assert cv2.imread(written[0]).shape[1] == 400  # the 80-pixel side upscaled to 400
