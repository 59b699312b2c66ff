"""SeginWEvaluator against pycocotools on a tiny SeginW-format suite, and the suite summary."""
import math
import os

import numpy as np
import pytest
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances

from mqformer_d2.data.datasets import register_seginw_style_suite
from mqformer_d2.evaluation import SeginWEvaluator, build_evaluator, summarize_seginw, summarize_seginw_suites
from evaluation_cases import (
    coco_results,
    instances,
    pycocotools_stats,
    random_predictions,
    rect_mask,
    rect_polygon,
    registered,
    rle,
    unique_name,
    write_json,
)

H, W = 24, 32
SUITE = {  # dataset -> class names (json category ids 0, 1, ...)
    "Fruits": ["apple", "banana", "kiwi"],
    "Tools": ["hammer", "screw driver"],
    "Pets": ["dog"],
}
# per image: (x0, y0, x1, y1, category); the last image has no annotation
BOXES = [[(2, 2, 10, 12, 0), (14, 4, 24, 20, -1)], [(4, 8, 12, 16, -1), (18, 2, 30, 10, 0)], []]


def write_dataset(root, name, classes):
    """valid/_annotations_min1cat.coco.json (polygons and RLE) + an empty image folder."""
    folder = os.path.join(root, name, "valid")
    os.makedirs(folder, exist_ok=True)
    images, annotations, gt = [], [], {}
    for image_id, boxes in enumerate(BOXES, start=1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": H, "width": W})
        gt[image_id] = []
        for x0, y0, x1, y1, category in boxes:
            category = category % len(classes)
            mask = rect_mask(x0, y0, x1, y1, H, W)
            segmentation = rect_polygon(x0, y0, x1, y1) if category == 0 else rle(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category, "segmentation": segmentation,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(mask.sum()),
                                "iscrowd": 0})
            gt[image_id].append((mask, category))
    categories = [{"id": i, "name": c, "supercategory": "none"} for i, c in enumerate(classes)]
    write_json(os.path.join(folder, "_annotations_min1cat.coco.json"),
               {"images": images, "annotations": annotations, "categories": categories})
    return gt


@pytest.fixture
def suite(tmp_path):
    """{dataset name: per-image gt (mask, category)} of a registered SeginW-format suite."""
    gts = {name: write_dataset(str(tmp_path), name, classes) for name, classes in SUITE.items()}
    prefix = unique_name("evaltest_seginw")
    names = register_seginw_style_suite(str(tmp_path), list(SUITE), prefix, splits={"val": "valid"})
    with registered(names):
        yield {f"{prefix}_{name}_val": gt for name, gt in gts.items()}


def run(evaluator, name, gt, seed, vocabulary=None, permutation=None):
    """Feed random predictions to ``evaluator`` (optionally with a permuted vocabulary) and
    return (its results, the same predictions as pycocotools results)."""
    prompts = MetadataCatalog.get(name).text_prompts
    rng = np.random.default_rng(seed)
    evaluator.reset()
    reference = []
    for image_id, gt_masks in gt.items():
        predicted = random_predictions(gt_masks, len(prompts), (H, W), rng)
        reference += coco_results(image_id, predicted, list(range(len(prompts))))
        if permutation is not None:  # the model saw `vocabulary`: class c is at position inv[c]
            inverse = np.argsort(permutation)
            predicted.pred_classes = predicted.pred_classes.new_tensor(inverse[predicted.pred_classes.numpy()])
        inputs = [{"image_id": image_id, "height": H, "width": W, "vocabulary": vocabulary or prompts}]
        evaluator.process(inputs, [{"instances": predicted}])
    return evaluator.evaluate(), reference


def test_build_picks_seginw_from_metadata(suite):
    for name in suite:
        assert isinstance(build_evaluator(None, name), SeginWEvaluator)


@pytest.mark.parametrize("seed", [0, 1])
def test_per_dataset_ap_equals_pycocotools(suite, seed):
    for name, gt in suite.items():
        results, reference = run(SeginWEvaluator(name), name, gt, seed)
        json_file = MetadataCatalog.get(name).json_file
        segm, bbox = (pycocotools_stats(json_file, reference, t) for t in ("segm", "bbox"))
        for index, metric in enumerate(["AP", "AP50", "AP75", "APs", "APm", "APl"]):
            for ours, theirs in ((results["segm"][metric], segm[index]), (results["bbox"][metric], bbox[index])):
                assert ours == theirs or (math.isnan(ours) and theirs < 0), (name, metric)
        assert 0 < results["segm"]["AP"] < 100


def test_permuted_vocabulary_gives_the_same_numbers(suite):
    name, gt = next((n, g) for n, g in suite.items() if len(MetadataCatalog.get(n).text_prompts) == 3)
    prompts = MetadataCatalog.get(name).text_prompts
    baseline, _ = run(SeginWEvaluator(name), name, gt, seed=3)
    permutation = [2, 0, 1]
    permuted, _ = run(SeginWEvaluator(name), name, gt, seed=3,
                      vocabulary=[prompts[i] for i in permutation], permutation=permutation)
    assert permuted["segm"]["AP"] == baseline["segm"]["AP"]


def test_empty_predictions_score_zero(suite):
    name, gt = next(iter(suite.items()))
    evaluator = SeginWEvaluator(name)
    evaluator.reset()
    prompts = MetadataCatalog.get(name).text_prompts
    for image_id in gt:
        empty = random_predictions([], 1, (H, W), np.random.default_rng(0), extra=0)
        evaluator.process([{"image_id": image_id, "height": H, "width": W, "vocabulary": prompts}],
                          [{"instances": empty}])
    results = evaluator.evaluate()
    assert results["segm"]["AP"] == 0.0 and results["bbox"]["AP50"] == 0.0


def test_predictions_of_unknown_texts_are_dropped(suite):
    name, gt = next(iter(suite.items()))
    prompts = MetadataCatalog.get(name).text_prompts
    evaluator = SeginWEvaluator(name)
    baseline, _ = run(evaluator, name, gt, seed=5)
    # the same predictions plus a confident "zebra" (not a dataset class) on each image
    rng = np.random.default_rng(5)
    evaluator.reset()
    for image_id, gt_masks in gt.items():
        predicted = random_predictions(gt_masks, len(prompts), (H, W), rng)
        zebra = instances(rect_mask(0, 0, 8, 8, H, W)[None], [len(prompts)], [1.0], (H, W))
        evaluator.process([{"image_id": image_id, "height": H, "width": W,
                            "vocabulary": list(prompts) + ["zebra"]}],
                          [{"instances": Instances.cat([predicted, zebra])}])
    results = evaluator.evaluate()
    for task in ("segm", "bbox"):
        assert results[task].keys() == baseline[task].keys()
        for key, value in results[task].items():
            assert value == baseline[task][key] or (math.isnan(value) and math.isnan(baseline[task][key]))


def test_summary_mean_and_median(suite):
    results = {}
    for seed, (name, gt) in enumerate(suite.items()):
        results[name], _ = run(SeginWEvaluator(name), name, gt, seed)
    aps = sorted(r["segm"]["AP"] for r in results.values())
    summary = summarize_seginw(results)
    assert summary["num_datasets"] == 3
    assert summary["mean_segm_AP"] == pytest.approx(sum(aps) / 3)
    assert summary["median_segm_AP"] == aps[1]
    assert summary["mean_bbox_AP"] == pytest.approx(np.mean([r["bbox"]["AP"] for r in results.values()]))
    suites = summarize_seginw_suites(dict(results, some_other_dataset={"segm": {"AP": 99.0}}))
    (suite_name, suite_summary), = suites.items()
    assert suite_name == MetadataCatalog.get(next(iter(suite))).suite
    assert suite_summary == summary


def test_summary_skips_undefined_and_rejects_missing():
    summary = summarize_seginw({"a": {"segm": {"AP": 10.0}}, "b": {"segm": {"AP": 30.0}},
                                "c": {"segm": {"AP": float("nan")}}})
    assert summary["num_datasets"] == 2 and summary["mean_segm_AP"] == 20.0
    assert "mean_bbox_AP" not in summary
    with pytest.raises(KeyError, match="'d'"):
        summarize_seginw({"d": {"bbox": {"AP": 1.0}}})
