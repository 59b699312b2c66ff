"""ReferringEvaluator on a hand-computed case: cIoU vs mIoU, Prec@k, first-sentence-only, boxes."""
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.structures import BoxMode

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.datasets import register_dataset
from mqformer_d2.evaluation import ReferringEvaluator, annotation_mask, build_evaluator
from test_evaluation_fixtures import rect_mask, rect_polygon, registered, rle, unique_name

H, W = 10, 10
SMALL = {"bbox": [0, 0, 2, 2], "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rect_polygon(0, 0, 2, 2),
         "category_id": 0, "texts": ["small one", "top left thing"], "sent_ids": [7, 8]}
LARGE = {"bbox": [0, 0, 10, 5], "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rle(rect_mask(0, 0, 10, 5, H, W)),
         "category_id": 0, "texts": ["the big one"], "sent_ids": [9]}


def image_input(image_id, annotations):
    """An eval-mapper input: every sentence of every annotation, in order."""
    vocabulary, owners = [], []
    for index, annotation in enumerate(annotations):
        vocabulary += annotation["texts"]
        owners += [index] * len(annotation["texts"])
    return {"image_id": image_id, "height": H, "width": W, "annotations": annotations,
            "vocabulary": vocabulary, "sentence_annotation_index": owners, "task": "referring"}


def predictions(small_mask, with_boxes=False):
    """Sentence 1: perfect; sentence 2: nothing; sentence 3: 30 of the 50 pixels (IoU 0.6)."""
    masks = torch.stack([torch.from_numpy(small_mask), torch.zeros(H, W, dtype=torch.bool),
                         torch.from_numpy(rect_mask(0, 0, 10, 3, H, W))])
    output = {"texts": SMALL["texts"] + LARGE["texts"], "masks": masks, "scores": torch.ones(3)}
    if with_boxes:
        output["boxes"] = torch.tensor([[0, 0, 2, 2], [6, 6, 9, 9], [0, 0, 10, 3]], dtype=torch.float32)
    return {"referring": output}


@pytest.fixture
def small_mask():
    return annotation_mask(SMALL, H, W, "test")


def evaluate(evaluator, small_mask, with_boxes=False):
    evaluator.reset()
    evaluator.process([image_input(1, [SMALL, LARGE]), image_input(2, [])],
                      [predictions(small_mask, with_boxes), {"referring": {
                          "texts": [], "masks": torch.zeros(0, H, W, dtype=torch.bool), "scores": torch.zeros(0)}}])
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
    output = predictions(small_mask)
    output["referring"]["masks"] = output["referring"]["masks"][:2]
    with pytest.raises(ValueError, match="my_refs"):
        evaluator.process([image_input(1, [SMALL, LARGE])], [output])


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
