"""The matting evaluator: chosen by evaluator_type "matting", exact for a perfect alpha, the
ground-truth trimap or one made from the alpha, clear errors."""
import cv2
import numpy as np
import pytest
import torch

from mqformer_d2.data.datasets import register_dataset
from mqformer_d2.evaluation import MattingEvaluator, build_evaluator


def _record(tmp_path, alpha8, trimap=None):
    alpha_path = str(tmp_path / "alpha.png")
    cv2.imwrite(alpha_path, alpha8)
    record = {"file_name": "x.png", "height": alpha8.shape[0], "width": alpha8.shape[1],
              "alpha_file_name": alpha_path}
    if trimap is not None:
        record["trimap_file_name"] = str(tmp_path / "trimap.png")
        cv2.imwrite(record["trimap_file_name"], trimap)
    return record


def test_build_evaluator_picks_the_matting_evaluator():
    register_dataset("matting_eval_test", lambda: [], task="matting", evaluator_type="matting",
                     text_prompts=["foreground"])
    assert isinstance(build_evaluator(None, "matting_eval_test"), MattingEvaluator)


def test_perfect_and_binary_alphas(tmp_path):
    alpha8 = np.array([[0, 0, 128, 255, 255]], np.uint8)
    record = _record(tmp_path, alpha8, trimap=np.array([[0, 128, 128, 128, 255]], np.uint8))
    evaluator = MattingEvaluator("test")
    evaluator.reset()
    evaluator.process([record], [{"alpha": torch.tensor(alpha8 / 255.0)}])
    evaluator.process([record], [{"alpha": np.array([[0, 0, 1, 1, 1.0]])}])  # binary: 127/255 off
    results = evaluator.evaluate()["matting"]
    assert results["num_images"] == 2
    assert results["SAD"] == pytest.approx((1 - 128 / 255) / 1000 / 2)  # mean of 0 and the error
    assert results["MSE"] == pytest.approx((1 - 128 / 255) ** 2 / 3 / 2)  # 3 unknown pixels
    assert results["MSE_whole"] == pytest.approx((1 - 128 / 255) ** 2 / 5 / 2)


def test_without_a_trimap_file_the_alpha_makes_one(tmp_path):
    alpha8 = np.zeros((9, 9), np.uint8)
    alpha8[4, 4] = 128
    evaluator = MattingEvaluator("test", trimap_dilation=1)
    evaluator.process([_record(tmp_path, alpha8)], [{"alpha": np.zeros((9, 9))}])
    results = evaluator.evaluate()["matting"]
    # the unknown region is the soft pixel and its 4 neighbours
    assert results["MSE"] == pytest.approx((128 / 255) ** 2 / 5)


def test_errors_name_the_problem(tmp_path):
    record = _record(tmp_path, np.zeros((4, 4), np.uint8))
    evaluator = MattingEvaluator("test")
    with pytest.raises(ValueError, match="alpha of size \\(3, 4\\)"):
        evaluator.process([record], [{"alpha": np.zeros((3, 4))}])
    with pytest.raises(KeyError, match="alpha_file_name"):
        evaluator.process([{"file_name": "y.png"}], [{"alpha": np.zeros((3, 4))}])
    record["height"] = 5
    with pytest.raises(ValueError, match="its image is 4x5"):
        evaluator.process([record], [{"alpha": np.zeros((5, 4))}])
