"""Controllable matting through the interfaces: MQFormerPredictor(matting=True) gives an alpha per
prompt, demo/demo.py --matting writes an alpha and an RGBA cut-out per prompt, and the errors."""
import os

import cv2
import numpy as np
import pytest
import torch
from helpers import TINY_CONFIG, TINY_OPTIONS, load_script, tiny_config

from mqformer_d2 import MQFormerPredictor
from mqformer_d2.matting.refiner import MattingRefiner

torch.set_num_threads(2)
HEIGHT, WIDTH = 40, 48
PROMPTS = ["the red circle", "zebra"]


@pytest.fixture(scope="module")
def refiner_file(tmp_path_factory):
    torch.manual_seed(0)
    model = MattingRefiner(width=4, context_blocks=1)
    path = str(tmp_path_factory.mktemp("refiner") / "refiner.pth")
    torch.save({"state_dict": model.state_dict(), "config": model.config()}, path)
    return path


@pytest.fixture(scope="module")
def image():
    return np.random.RandomState(0).randint(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictor(refiner_file):
    torch.manual_seed(0)
    return MQFormerPredictor(tiny_config("MODEL.MQFORMER.MATTING.WEIGHTS", refiner_file,
                                         "MODEL.MQFORMER.MATTING.TRIMAP_BAND", 2))


def test_matting_gives_one_alpha_per_prompt(predictor, image):
    referring = predictor(image, prompts=PROMPTS, matting=True)["referring"]
    alphas, masks = referring["alphas"], referring["masks"]
    assert alphas.shape == (2, HEIGHT, WIDTH) and alphas.dtype == torch.float32
    assert float(alphas.min()) >= 0 and float(alphas.max()) <= 1
    # far outside a prompt's mask (beyond the trimap band) the alpha is 0
    far = ~torch.from_numpy(cv2.dilate(masks[0].numpy().astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool))
    assert (alphas[0][far] == 0).all()
    assert "alphas" not in predictor(image, prompts=PROMPTS, task="referring")["referring"]


def test_matting_errors(predictor, image):
    with pytest.raises(ValueError, match="referring"):
        predictor(image, prompts=PROMPTS, task="instance", matting=True)
    without_weights = MQFormerPredictor(tiny_config())
    with pytest.raises(ValueError, match="MODEL.MQFORMER.MATTING.WEIGHTS"):
        without_weights(image, prompts=PROMPTS, matting=True)


def test_demo_writes_alpha_and_cutout_per_prompt(image, refiner_file, tmp_path):
    demo = load_script("demo/demo.py")
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    output = tmp_path / "mattes"
    argv = ["--config-file", TINY_CONFIG, "--input", str(tmp_path / "photo.png"), "--output", str(output),
            "--prompts", ";".join(PROMPTS), "--separator", ";", "--matting", "--opts", *map(str, TINY_OPTIONS),
            "MODEL.MQFORMER.MATTING.WEIGHTS", refiner_file]
    written = demo.main(argv)
    assert sorted(os.listdir(output)) == sorted(map(os.path.basename, written)) == [
        "photo_the_red_circle_alpha.png", "photo_the_red_circle_cutout.png",
        "photo_zebra_alpha.png", "photo_zebra_cutout.png"]
    alpha = cv2.imread(str(output / "photo_zebra_alpha.png"), cv2.IMREAD_UNCHANGED)
    cutout = cv2.imread(str(output / "photo_zebra_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (HEIGHT, WIDTH) and cutout.shape == (HEIGHT, WIDTH, 4)
    np.testing.assert_array_equal(cutout[:, :, 3], alpha)
    np.testing.assert_array_equal(cutout[:, :, :3], image)
    with pytest.raises(FileExistsError, match="--overwrite"):
        demo.main(argv)
