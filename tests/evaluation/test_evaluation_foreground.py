"""ForegroundEvaluator: MAE and max F-measure computed by hand on tiny maps."""
import numpy as np
import pytest
import torch

from mqformer_d2.data.datasets import register_dataset
from mqformer_d2.evaluation import ForegroundEvaluator, build_evaluator, f_measure_curve
from evaluation_cases import (
    FOREGROUND_ANNOTATION,
    FOREGROUND_GT,
    FOREGROUND_MAP,
    rect_mask,
    registered,
    rle,
    unique_name,
)


def run(evaluator, items):
    evaluator.reset()
    for image_id, (annotations, scores) in enumerate(items):
        evaluator.process([{"image_id": image_id, "height": 2, "width": 3, "annotations": annotations}],
                          [{"sem_seg": scores}])
    return evaluator.evaluate()["foreground"]


def test_mae_and_max_f_by_hand():
    results = run(ForegroundEvaluator("hand", normalize=False), [([FOREGROUND_ANNOTATION], FOREGROUND_MAP)])
    # |0.9-1| + |0.5-1| + |0.5-0| + 0 + |0.2-0| + |1-0| = 2.3 over 6 pixels
    assert results["MAE"] == pytest.approx(2.3 / 6)
    # 8-bit levels: 229, 127, 127 / 0, 51, 255. Best threshold: t in (127, 229] keeps {229, 255}:
    # P = 1/2, R = 1/2, F = 0.5; t in (51, 127] keeps {229, 127, 127, 255}: P = 2/4, R = 1, F = 1.3*0.5/(0.3*0.5+1)
    best = max(0.5, 1.3 * 0.5 / (0.3 * 0.5 + 1))
    assert results["maxF"] == pytest.approx(best)
    assert results["num_images"] == 1


def test_curve_matches_definition():
    prediction = FOREGROUND_MAP[0].clamp(0, 1).numpy().astype(np.float64)
    curve = f_measure_curve(prediction, FOREGROUND_GT)
    levels = np.floor(prediction * 255)
    for t in (0, 51, 52, 127, 128, 229, 230, 255):
        positive = levels >= t
        tp = (positive & FOREGROUND_GT).sum()
        p = tp / positive.sum() if positive.sum() else 0.0
        r = tp / FOREGROUND_GT.sum()
        f = 1.3 * p * r / (0.3 * p + r) if p * r > 0 else 0.0
        assert curve[t] == pytest.approx(f), t


def test_normalization_and_an_image_without_foreground():
    scores = torch.tensor([[[0.2, 0.6, 0.2], [0.2, 0.2, 0.2]]])  # min-max -> one pixel at 1
    results = run(ForegroundEvaluator("hand"), [([FOREGROUND_ANNOTATION], scores), ([], torch.zeros(1, 2, 3))])
    # image 1: map 0,1,0/0,0,0 -> errors 1,0,0,0,0,0; image 2: all zero against no foreground
    assert results["MAE"] == pytest.approx((1 / 6 + 0) / 2)
    # image 1 at t >= 1: P = 1, R = 1/2 -> F = 1.3*0.5/(0.3+0.5); image 2: F = 0 everywhere
    assert results["maxF"] == pytest.approx((1.3 * 0.5 / 0.8 + 0) / 2)
    assert results["num_images"] == 2


def test_build_from_metadata():
    name = unique_name("evaltest_fg")
    with registered([name]):
        register_dataset(name, lambda: [], task="foreground", evaluator_type="foreground",
                         text_prompts=["foreground"])
        evaluator = build_evaluator(None, name)
        assert isinstance(evaluator, ForegroundEvaluator)
        gt = rect_mask(0, 0, 2, 2, 4, 4)
        evaluator.reset()
        annotation = dict(FOREGROUND_ANNOTATION, segmentation=rle(gt))
        evaluator.process([{"image_id": 0, "height": 4, "width": 4, "annotations": [annotation]}],
                          [{"sem_seg": torch.from_numpy(gt[None].astype(np.float32))}])
        results = evaluator.evaluate()["foreground"]
        assert results["MAE"] == 0.0 and results["maxF"] == pytest.approx(1.0)


def test_wrong_map_shape_is_reported():
    evaluator = ForegroundEvaluator("hand")
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        evaluator.process([{"height": 2, "width": 3, "annotations": []}], [{"sem_seg": torch.zeros(2, 2, 3)}])
