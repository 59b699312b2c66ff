"""ReferringEvaluator on a hand-computed case: cIoU vs mIoU, Prec@k, first-sentence-only, boxes."""
import pytest
import torch
from detectron2.config import get_cfg

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.datasets import register_dataset
from mqformer_d2.evaluation import ReferringEvaluator, annotation_mask, build_evaluator
from evaluation_cases import (
    REFERRING_H,
    REFERRING_LARGE,
    REFERRING_SMALL,
    REFERRING_W,
    referring_input,
    referring_predictions,
    registered,
    unique_name,
)


@pytest.fixture
def small_mask():
    return annotation_mask(REFERRING_SMALL, REFERRING_H, REFERRING_W, "test")


def evaluate(evaluator, small_mask, with_boxes=False):
    evaluator.reset()
    nothing = {"texts": [], "masks": torch.zeros(0, REFERRING_H, REFERRING_W, dtype=torch.bool),
               "scores": torch.zeros(0)}
    evaluator.process([referring_input(1, [REFERRING_SMALL, REFERRING_LARGE]), referring_input(2, [])],
                      [referring_predictions(small_mask, with_boxes), {"referring": nothing}])
    return evaluator.evaluate()["referring"]


def test_every_sentence(small_mask):
    a = float(small_mask.sum())
    results = evaluate(ReferringEvaluator("hand"), small_mask)
    assert results["num_sentences"] == 3
    assert results["cIoU"] == pytest.approx(100 * (a + 0 + 30) / (a + a + 50))
    assert results["mIoU"] == pytest.approx(100 * (1 + 0 + 0.6) / 3)
    assert results["cIoU"] != pytest.approx(results["mIoU"])
    expected = {"Prec@0.5": 2 / 3, "Prec@0.6": 2 / 3, "Prec@0.7": 1 / 3, "Prec@0.8": 1 / 3, "Prec@0.9": 1 / 3}
    for key, value in expected.items():
        assert results[key] == pytest.approx(100 * value), key
    assert "box_Prec@0.5" not in results


def test_first_sentence_only(small_mask):
    a = float(small_mask.sum())
    results = evaluate(ReferringEvaluator("hand", first_sentence_only=True), small_mask)
    assert results["num_sentences"] == 2
    assert results["cIoU"] == pytest.approx(100 * (a + 30) / (a + 50))
    assert results["mIoU"] == pytest.approx(100 * (1 + 0.6) / 2)


def test_box_precision_when_boxes_are_predicted(small_mask):
    results = evaluate(ReferringEvaluator("hand"), small_mask, with_boxes=True)
    assert results["box_Prec@0.5"] == pytest.approx(100 * 2 / 3)


def test_no_sentence_gives_no_result():
    evaluator = ReferringEvaluator("hand")
    evaluator.reset()
    assert evaluator.evaluate() == {}


def test_mismatched_outputs_name_the_dataset(small_mask):
    evaluator = ReferringEvaluator("my_refs")
    output = referring_predictions(small_mask)
    output["referring"]["masks"] = output["referring"]["masks"][:2]
    with pytest.raises(ValueError, match="my_refs"):
        evaluator.process([referring_input(1, [REFERRING_SMALL, REFERRING_LARGE])], [output])


def test_build_from_metadata_and_config(small_mask):
    name = unique_name("evaltest_refs")
    with registered([name]):
        register_dataset(name, lambda: [], task="referring", evaluator_type="referring",
                         text_prompts=["object"])
        cfg = add_mqformer_config(get_cfg())
        assert build_evaluator(cfg, name).first_sentence_only is False
        cfg.TEST.REFERRING_FIRST_SENTENCE_ONLY = True
        evaluator = build_evaluator(cfg, name)
        assert isinstance(evaluator, ReferringEvaluator) and evaluator.first_sentence_only
        assert evaluate(evaluator, small_mask)["num_sentences"] == 2
