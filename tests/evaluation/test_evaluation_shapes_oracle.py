"""End to end on the real on-disk formats of the synthetic ``mqformer_shapes`` benchmark: the
eval mapper's inputs, "oracle" outputs built from their ground truth, build_evaluator from the
metadata -> every metric is perfect (AP, PQ, mIoU, cIoU = 100; MAE = 0, maxF = 1)."""
import numpy as np
import pytest
import torch

from mqformer_d2.data import UnifiedDatasetMapper
from mqformer_d2.data.multi_dataset import load_tagged_dataset_dicts
from mqformer_d2.data.shapes.benchmark import ShapesBenchmarkConfig
from mqformer_d2.data.shapes.register import register_shapes_benchmark
from mqformer_d2.evaluation import annotation_mask, build_evaluator, summarize_seginw_suites
from mqformer_d2.evaluation.adapters import drop_thing_view
from evaluation_cases import instances

SIZES = dict(train_images=1, val_images=3, detection_train_images=1, detection_val_images=1,
             foreground_train_images=1, foreground_val_images=2, seginw_train_images=1,
             seginw_val_images=2)


@pytest.fixture(scope="module")
def shapes_names(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes_eval"))
    names = register_shapes_benchmark(root, ShapesBenchmarkConfig(seed=3, image_size=64, **SIZES))
    yield [n for n in names if n.endswith("_val") or "_val_" in n]
    for name in names:
        drop_thing_view(name)
    register_shapes_benchmark()  # back to the default root


def gt_masks(x):
    return [annotation_mask(a, x["height"], x["width"], "oracle") for a in x["annotations"]]


def oracle_output(x):
    """The ground truth of a mapped eval input, as the model would output it."""
    masks, size = gt_masks(x), (x["height"], x["width"])
    categories = [a.get("category_id", 0) for a in x["annotations"]]
    task = x["task"]
    if task == "instance":
        stack = np.stack(masks) if masks else np.zeros((0, *size), bool)
        return {"instances": instances(stack, categories, [1.0] * len(masks), size)}
    if task == "panoptic":
        ids = torch.zeros(size, dtype=torch.int32)
        for index, mask in enumerate(masks):
            ids[torch.from_numpy(mask)] = index + 1
        infos = [{"id": i + 1, "category_id": c, "isthing": True} for i, c in enumerate(categories)]
        return {"panoptic_seg": (ids, infos)}
    if task == "semantic":
        scores = torch.zeros(len(x["vocabulary"]), *size)
        for mask, category in zip(masks, categories):
            scores[category][torch.from_numpy(mask)] = 1.0
        return {"sem_seg": scores}
    if task == "foreground":
        union = np.any(np.stack(masks), 0) if masks else np.zeros(size, bool)
        return {"sem_seg": torch.from_numpy(union[None].astype(np.float32))}
    if task == "referring":
        owners = x["sentence_annotation_index"]
        stack = torch.from_numpy(np.stack([masks[o] for o in owners])) if owners else torch.zeros(0, *size).bool()
        return {"referring": {"texts": x["vocabulary"], "masks": stack, "scores": torch.ones(len(owners))}}
    raise AssertionError(task)


def evaluate(name):
    dicts, _ = load_tagged_dataset_dicts([name])
    mapper = UnifiedDatasetMapper(False, augmentations=[], image_format="RGB")
    evaluator = build_evaluator(None, name)
    evaluator.reset()
    for record in dicts:
        x = mapper(record)
        evaluator.process([x], [oracle_output(x)])
    return evaluator.evaluate()


def test_oracle_scores_are_perfect(shapes_names):
    results = {}
    for name in shapes_names:
        if name.endswith("_detection") or "_detection_" in name:
            continue  # box-only data: no masks for the oracle
        results[name] = evaluate(name)
        for task, metrics in results[name].items():
            perfect = {"AP": 100.0, "PQ": 100.0, "mIoU": 100.0, "cIoU": 100.0, "MAE": 0.0, "maxF": 1.0}
            for metric, value in perfect.items():
                if metric in metrics:
                    assert metrics[metric] == pytest.approx(value), (name, task, metric)
    assert any("panoptic_seg" in r for r in results.values())
    summaries = summarize_seginw_suites(results)
    assert summaries["mqformer_shapes_seginw"]["mean_segm_AP"] == pytest.approx(100.0)
