"""Tiny fixtures, hand-computed cases and reference computations shared by the evaluator tests
(test_evaluation_*.py). Holds no tests itself."""
import contextlib
import io
import json
import os
import uuid

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.structures import Boxes, BoxMode, Instances
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from helpers import registered  # noqa: F401  (re-exported for the evaluator tests)


def unique_name(prefix: str) -> str:
    """A dataset name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def rect_mask(x0, y0, x1, y1, height, width):
    """Bool mask of the pixel rectangle [x0, x1) x [y0, y1)."""
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask):
    """COCO RLE with str counts of a bool mask."""
    encoded = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def rect_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


# The hand-computed foreground case: a 2 x 3 image whose two left pixels of the top row are
# foreground, and a score map for it.
FOREGROUND_GT = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
FOREGROUND_MAP = torch.tensor([[[0.9, 0.5, 0.5], [0.0, 0.2, 1.5]]])  # 1.5 clamps to 1
FOREGROUND_ANNOTATION = {"bbox": [0, 0, 2, 1], "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rle(FOREGROUND_GT),
                         "category_id": 0}

# The hand-computed referring case: a 10 x 10 image with a small object (two sentences) and a
# large one (one sentence).
REFERRING_H, REFERRING_W = 10, 10
REFERRING_SMALL = {"bbox": [0, 0, 2, 2], "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rect_polygon(0, 0, 2, 2),
                   "category_id": 0, "texts": ["small one", "top left thing"], "sent_ids": [7, 8]}
REFERRING_LARGE = {"bbox": [0, 0, 10, 5], "bbox_mode": BoxMode.XYWH_ABS,
                   "segmentation": rle(rect_mask(0, 0, 10, 5, REFERRING_H, REFERRING_W)),
                   "category_id": 0, "texts": ["the big one"], "sent_ids": [9]}


def referring_input(image_id, annotations):
    """An eval-mapper input of the referring case: every sentence of every annotation, in order."""
    vocabulary, owners = [], []
    for index, annotation in enumerate(annotations):
        vocabulary += annotation["texts"]
        owners += [index] * len(annotation["texts"])
    return {"image_id": image_id, "height": REFERRING_H, "width": REFERRING_W, "annotations": annotations,
            "vocabulary": vocabulary, "sentence_annotation_index": owners, "task": "referring"}


def referring_predictions(small_mask, with_boxes=False):
    """The referring case's outputs. Sentence 1: perfect; sentence 2: nothing; sentence 3: 30 of
    the 50 pixels (IoU 0.6). small_mask: (H, W) bool, the small object's mask."""
    height, width = REFERRING_H, REFERRING_W
    masks = torch.stack([torch.from_numpy(small_mask), torch.zeros(height, width, dtype=torch.bool),
                         torch.from_numpy(rect_mask(0, 0, 10, 3, height, width))])
    output = {"texts": REFERRING_SMALL["texts"] + REFERRING_LARGE["texts"], "masks": masks, "scores": torch.ones(3)}
    if with_boxes:
        output["boxes"] = torch.tensor([[0, 0, 2, 2], [6, 6, 9, 9], [0, 0, 10, 3]], dtype=torch.float32)
    return {"referring": output}


def instances(masks, classes, scores, size):
    """Detectron2 Instances as the model outputs them (boxes from the masks)."""
    result = Instances(size)
    masks = torch.as_tensor(np.asarray(masks, dtype=bool).reshape(-1, *size))
    boxes = torch.zeros(len(masks), 4)
    for index, mask in enumerate(masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs):
            boxes[index] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    result.pred_masks = masks
    result.pred_boxes = Boxes(boxes)
    result.scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1)
    result.pred_classes = torch.as_tensor(classes, dtype=torch.int64).reshape(-1)
    return result


def coco_results(image_id, predicted: Instances, category_ids):
    """pycocotools result dicts of one image's Instances; ``category_ids[class]`` is the json id
    of a predicted class (None = not evaluated)."""
    boxes = predicted.pred_boxes.tensor.numpy().copy()
    boxes[:, 2:] -= boxes[:, :2]
    results = []
    for index in range(len(predicted)):
        category = category_ids[int(predicted.pred_classes[index])]
        if category is None:
            continue
        results.append({
            "image_id": image_id,
            "category_id": category,
            "bbox": boxes[index].tolist(),
            "score": predicted.scores.tolist()[index],
            "segmentation": rle(predicted.pred_masks[index].numpy()),
        })
    return results


def pycocotools_stats(json_file, results, iou_type):
    """COCOeval stats (x100) of ``results`` against ``json_file``, straight from pycocotools."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(json_file)
        if iou_type == "segm":
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        coco_eval = COCOeval(gt, gt.loadRes(results), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [float(v * 100) for v in coco_eval.stats]


def random_predictions(gt_masks, num_classes, size, rng, extra=3):
    """Predictions near the ground-truth masks (shifted, some mislabelled) plus false positives."""
    height, width = size
    masks, classes = [], []
    for mask, category in gt_masks:
        shifted = np.roll(mask, shift=(int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
        masks.append(shifted)
        classes.append(category if rng.random() < 0.8 else int(rng.integers(num_classes)))
    for _ in range(extra):
        x0, y0 = int(rng.integers(0, width - 4)), int(rng.integers(0, height - 4))
        masks.append(rect_mask(x0, y0, x0 + int(rng.integers(2, 8)), y0 + int(rng.integers(2, 8)),
                               height, width))
        classes.append(int(rng.integers(num_classes)))
    scores = rng.random(len(masks)).astype(np.float32)
    return instances(np.stack(masks) if masks else np.zeros((0, height, width), bool),
                     classes, scores, size)
