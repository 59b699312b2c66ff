"""MQFormerPredictor with exemplar prompts beside text prompts: exemplars from other images (arrays
or files, any size), boxes on the image itself, masks, negatives, and the errors."""
import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_config

from mqformer_d2 import MQFormerPredictor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return MQFormerPredictor(tiny_config("DATASETS.TEST", "('mqformer_shapes_val_instance',)",
                                         "MODEL.MQFORMER.EXEMPLARS.ENABLED", True))


def _image(height, width, seed):
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)


def test_text_and_exemplar_prompts_in_one_call(predictor, tmp_path):
    photo = str(tmp_path / "part.png")
    cv2.imwrite(photo, _image(90, 50, 1))
    mask = np.zeros((70, 100), dtype=bool)
    mask[10:30, 20:60] = True
    exemplars = {"part 4711": [(_image(40, 120, 2), (5, 5, 40, 30)), (photo, (0, 10, 50, 80)),
                               (_image(70, 100, 3), mask)],
                 "this thing": [(None, (10, 10, 40, 40))]}
    image = _image(60, 80, 0)
    out = predictor(image, prompts=["cat"], exemplars=exemplars, task="semantic")
    assert out["sem_seg"].shape == (3, 60, 80)  # cat, part 4711, this thing
    text_only = predictor(image, prompts=["cat", "part 4711", "this thing"], task="semantic")
    torch.testing.assert_close(out["sem_seg"][0], text_only["sem_seg"][0], atol=0.3, rtol=0)
    assert not torch.allclose(out["sem_seg"][1], text_only["sem_seg"][1])
    instances = predictor(image, exemplars=exemplars, task="instance")["instances"]
    assert int(instances.pred_classes.max()) < 2  # the exemplar names only


def test_negative_exemplars_only_lower_their_prompt(predictor):
    image = _image(60, 80, 0)
    exemplars = {"part": [(_image(40, 40, 5), (0, 0, 30, 30))]}
    plain = predictor(image, prompts=["cat"], exemplars=exemplars, task="semantic")["sem_seg"]
    negative = predictor(image, prompts=["cat"], exemplars=exemplars, task="semantic",
                         negative_exemplars={"part": [(None, (30, 20, 70, 55))], "cat": [(None, (0, 0, 20, 20))]})["sem_seg"]
    assert negative.shape == plain.shape
    assert (negative <= plain + 1e-5).all()


@pytest.mark.parametrize("exemplars, error, message", [
    ({"part": []}, ValueError, "K = 0"),
    ({"part": [(None, (10, 10, 10, 20))]}, ValueError, "zero area"),
    ({"part": [(None, (10, 10, 90, 20))]}, ValueError, r"exemplars\['part'\]\[0\].*outside"),
    ({"part": (None, (0, 0, 5, 5))}, TypeError, "list of"),
    ({"part": [("/nonexistent/exemplar.png", (0, 0, 5, 5))]}, Exception, "exemplar.png"),
])
def test_bad_exemplars_are_named(predictor, exemplars, error, message):
    with pytest.raises(error, match=message):
        predictor(_image(60, 80, 0), exemplars=exemplars, task="instance")


def test_negatives_of_unknown_prompts_and_models_without_encoder():
    image = _image(60, 80, 0)
    torch.manual_seed(0)
    plain = MQFormerPredictor(tiny_config("DATASETS.TEST", "('mqformer_shapes_val_instance',)"))
    with pytest.raises(ValueError, match="EXEMPLARS.ENABLED"):
        plain(image, exemplars={"part": [(None, (0, 0, 10, 10))]})


def test_negatives_must_name_a_prompt(predictor):
    with pytest.raises(ValueError, match="neither prompts nor exemplar prompts"):
        predictor(_image(60, 80, 0), prompts=["cat"], negative_exemplars={"dog": [(None, (0, 0, 10, 10))]})
