"""Tiny datasets on disk in the formats detectron2's own registrations read: a COCO instances json,
a COCO panoptic json with its PNGs, and an ADE20K-style semantic folder (images/ + label PNGs).

Every image is 64x64 with two coloured rectangles on grey, so that a model has something to fit."""
import json
import os
from typing import Dict, List, Tuple

import numpy as np
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from panopticapi.utils import id2rgb
from PIL import Image

SIZE = 64
# (x0, y0, x1, y1) of the two objects of image i: a square and a bar, moved with i.
_OBJECTS = ((8, 8, 30, 30), (34, 40, 60, 54))
_COLOURS = ((220, 30, 30), (30, 30, 220))


def _boxes(index: int) -> List[Tuple[int, int, int, int]]:
    return [(x0 + index, y0, x1 + index, y1) for x0, y0, x1, y1 in _OBJECTS]


def write_images(folder: str, count: int, ext: str = "jpg") -> List[str]:
    """`count` images `img<i>.<ext>` in `folder`; their file names."""
    os.makedirs(folder, exist_ok=True)
    names = []
    for index in range(count):
        image = np.full((SIZE, SIZE, 3), 128, np.uint8)
        for (x0, y0, x1, y1), colour in zip(_boxes(index), _COLOURS):
            image[y0:y1, x0:x1] = colour
        names.append(f"img{index}.{ext}")
        Image.fromarray(image).save(os.path.join(folder, names[-1]), quality=95)
    return names


def write_coco_instances(root: str, count: int = 2, category_ids=(3, 7),
                         json_name: str = "instances.json") -> Tuple[str, str]:
    """A COCO instances json `root/<json_name>` (category ids not contiguous, polygons) and its
    images in `root/images/`; (json file, image root)."""
    image_root = os.path.join(root, "images")
    names = write_images(image_root, count)
    images, annotations = [], []
    for index, name in enumerate(names):
        images.append({"id": index + 1, "file_name": name, "height": SIZE, "width": SIZE})
        for box, category in zip(_boxes(index), category_ids):
            x0, y0, x1, y1 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": category, "iscrowd": 0,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            })
    categories = [{"id": c, "name": n, "supercategory": "shape"} for c, n in zip(category_ids, ("red square", "blue_bar"))]
    json_file = os.path.join(root, json_name)
    with open(json_file, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return json_file, image_root


def coco_category(name: str) -> Dict:
    """COCO's panoptic category named `name` (detectron2's COCO_CATEGORIES)."""
    return next(c for c in COCO_CATEGORIES if c["name"] == name)


def write_coco_panoptic(root: str, count: int = 2) -> Dict[str, str]:
    """A COCO panoptic json + PNGs (a "person" and a "dog" on "grass-merged"), its images and an
    instances json for the same things, under `root`; the paths register_coco_panoptic takes."""
    image_root = os.path.join(root, "images")
    panoptic_root = os.path.join(root, "panoptic")
    os.makedirs(panoptic_root, exist_ok=True)
    names = write_images(image_root, count)
    things = [coco_category("person"), coco_category("dog")]
    grass = coco_category("grass-merged")
    images, annotations, instances = [], [], []
    for index, name in enumerate(names):
        segment_ids = np.full((SIZE, SIZE), 1, np.int64)  # segment 1: grass everywhere else
        segments = [{"id": 1, "category_id": grass["id"], "iscrowd": 0, "area": 0, "bbox": [0, 0, SIZE, SIZE]}]
        for number, ((x0, y0, x1, y1), category) in enumerate(zip(_boxes(index), things), start=2):
            segment_ids[y0:y1, x0:x1] = number
            box = [x0, y0, x1 - x0, y1 - y0]
            segments.append({"id": number, "category_id": category["id"], "iscrowd": 0, "area": box[2] * box[3],
                             "bbox": box})
            instances.append({"id": len(instances) + 1, "image_id": index + 1, "category_id": category["id"],
                              "iscrowd": 0, "bbox": box, "area": box[2] * box[3],
                              "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
        segments[0]["area"] = int((segment_ids == 1).sum())
        png = name.replace(".jpg", ".png")
        Image.fromarray(id2rgb(segment_ids)).save(os.path.join(panoptic_root, png))
        images.append({"id": index + 1, "file_name": name, "height": SIZE, "width": SIZE})
        annotations.append({"image_id": index + 1, "file_name": png, "segments_info": segments})
    categories = [{k: c[k] for k in ("id", "name", "isthing", "supercategory") if k in c} for c in COCO_CATEGORIES]
    paths = {"image_root": image_root, "panoptic_root": panoptic_root,
             "panoptic_json": os.path.join(root, "panoptic.json"), "instances_json": os.path.join(root, "instances.json")}
    with open(paths["panoptic_json"], "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    thing_categories = [{"id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]]
    with open(paths["instances_json"], "w") as f:
        json.dump({"images": images, "annotations": instances, "categories": thing_categories}, f)
    return paths


def write_ade20k_semantic(root: str, split: str = "validation", count: int = 2,
                          labels=(3, 12), background: int = 0) -> str:
    """ADE20K-150 in detectron2's layout under `root` (ADEChallengeData2016/images/<split>/*.jpg,
    annotations_detectron2/<split>/*.png with 0-based labels, 255 ignored): `labels` for the two
    objects, `background` elsewhere; the ADE folder."""
    ade = os.path.join(root, "ADEChallengeData2016")
    names = write_images(os.path.join(ade, "images", split), count)
    label_dir = os.path.join(ade, "annotations_detectron2", split)
    os.makedirs(label_dir, exist_ok=True)
    for index, name in enumerate(names):
        label_map = np.full((SIZE, SIZE), background, np.uint8)
        for (x0, y0, x1, y1), label in zip(_boxes(index), labels):
            label_map[y0:y1, x0:x1] = label
        label_map[:2] = 255  # a strip of ignored pixels
        Image.fromarray(label_map).save(os.path.join(label_dir, name.replace(".jpg", ".png")))
    return ade
