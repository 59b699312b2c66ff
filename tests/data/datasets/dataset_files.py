"""Writers of tiny dataset files in the official on-disk formats, and checks shared by the
dataset-registration tests (test_dataset_registrations_*.py; their fixture is in conftest.py).
Holds no tests itself."""
import json
import os

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

H, W = 24, 32


def write_image(path, height=H, width=W):
    """A small RGB JPEG (content irrelevant: loaders never read images)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    return path


def write_png(path, array):
    """A PNG of an integer array (uint8 label map, RGB panoptic ids...)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def box_mask(x0, y0, x1, y1, height=H, width=W):
    """Boolean mask of the pixel rectangle [x0, x1) x [y0, y1)."""
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rect_polygon(x0, y0, x1, y1):
    """A COCO polygon (one ring) of a rectangle."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def decode(segmentation, height=H, width=W):
    """Boolean mask of a COCO segmentation (RLE dict or polygon list), via pycocotools."""
    if isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    else:
        rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    return mask_util.decode(rle).astype(bool)


def xywh(mask):
    """XYWH box of a boolean mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def by_prompt(record, metadata):
    """{text prompt of the category: annotation} of a record (one annotation per category)."""
    return {metadata.text_prompts[a["category_id"]]: a for a in record["annotations"]}


def coco_image(image_id, file_name, height=H, width=W):
    return {"id": image_id, "file_name": file_name, "height": height, "width": width}


def coco_ann(ann_id, image_id, category_id, x0, y0, x1, y1, **extra):
    """A COCO instance annotation of a rectangle (polygon + box)."""
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": (x1 - x0) * (y1 - y0),
        "iscrowd": 0,
        "segmentation": rect_polygon(x0, y0, x1, y1),
    }
    ann.update(extra)
    return ann
