"""Writers of the on-disk formats: one class per kind of split. ``write_image`` writes one scene's
files and returns its json records (it keeps no state, so it may run in worker processes);
``collect`` takes the records in image order and numbers the annotations; ``finish`` writes the
split's json files.

Conventions: image and annotation ids are 1-based (pycocotools treats an annotation id of 0 as
"unmatched"); masks are COCO RLE with string counts; boxes are the tight XYWH box of the visible
mask; all json is written compactly with a fixed key order, so output bytes depend only on the seed.
"""
import json
import os
from typing import List

import cv2
import numpy as np
from panopticapi.utils import id2rgb

from ..masks import encode_mask, rle_xywh_box
from .layout import Layout, image_file_name
from .referring import referring_sentences
from .scene import Scene
from .vocabulary import ALL_CLASSES, THING_CLASSES, SuiteDataset


def write_png(path: str, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8 array as PNG."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, array):
        raise OSError(f"could not write PNG {path}")


def write_json(path: str, content) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(content, separators=(",", ":")))  # dumps uses the C encoder


def image_record(image_id: int, image_size: int) -> dict:
    return {"id": image_id, "file_name": image_file_name(image_id),
            "height": image_size, "width": image_size}


def coco_annotation(image_id: int, category_id: int, mask: np.ndarray,
                    with_mask: bool = True) -> dict:
    """A COCO instance annotation without its ``id`` (numbered by ``_AnnotatedImages.collect``);
    ``with_mask=False`` leaves out ``segmentation`` (box only)."""
    rle = encode_mask(mask)
    annotation = {"image_id": image_id, "category_id": category_id,
                  "bbox": rle_xywh_box(rle), "area": int(np.count_nonzero(mask)), "iscrowd": 0}
    if with_mask:
        annotation["segmentation"] = rle
    return annotation


def thing_categories() -> List[dict]:
    """COCO categories of the closed-vocabulary splits (ids 1-based)."""
    return [{"id": i + 1, "name": name, "supercategory": "shape"}
            for i, name in enumerate(THING_CLASSES)]


def panoptic_categories() -> List[dict]:
    return [{"id": i + 1, "name": name, "isthing": int(i < len(THING_CLASSES)),
             "supercategory": "shape" if i < len(THING_CLASSES) else "background"}
            for i, name in enumerate(ALL_CLASSES)]


def panoptic_segments(scene: Scene):
    """(segment-id map, segments_info): things get ids 1..n in drawing order, then one segment per
    stuff class present; category ids are 1-based over ``ALL_CLASSES``."""
    ids = np.zeros(scene.stuff_map.shape, np.int32)
    masks, categories = [], []
    labels = scene.semantic_map()
    for obj in scene.objects:
        masks.append(obj.visible_mask)
        categories.append(obj.category)
    for class_index in range(len(THING_CLASSES), len(ALL_CLASSES)):
        region = labels == class_index
        if region.any():
            masks.append(region)
            categories.append(class_index)
    segments = []
    for segment_id, (mask, category) in enumerate(zip(masks, categories), start=1):
        ids[mask] = segment_id
        rle = encode_mask(mask)
        segments.append({"id": segment_id, "category_id": category + 1, "iscrowd": 0,
                         "bbox": rle_xywh_box(rle), "area": int(np.count_nonzero(mask))})
    return ids, segments


class _AnnotatedImages:
    """Accumulates image records and COCO annotations; annotation ids count from 1 in order."""

    def __init__(self):
        self.images: List[dict] = []
        self.annotations: List[dict] = []

    def collect(self, record: dict) -> List[int]:
        """Append one image's records; returns the ids given to its annotations."""
        self.images.append(record["image"])
        first = len(self.annotations) + 1
        self.annotations += [dict(id=first + i, **ann)
                             for i, ann in enumerate(record["annotations"])]
        return list(range(first, len(self.annotations) + 1))


class FullSceneWriter(_AnnotatedImages):
    """Train / val scenes: image, semantic PNG, panoptic PNG + json, instances json, refs json."""

    def __init__(self, layout: Layout, split: str, image_size: int, max_sentences: int):
        super().__init__()
        self.layout, self.split = layout, split
        self.image_size, self.max_sentences = image_size, max_sentences
        self.panoptic: List[dict] = []
        self.refs: List[dict] = []
        self.num_sentences = 0

    def write_image(self, image_id: int, scene: Scene, rng: np.random.Generator) -> dict:
        name = image_file_name(image_id)
        write_png(os.path.join(self.layout.images(self.split), name), scene.image)
        write_png(os.path.join(self.layout.semantic(self.split), name), scene.semantic_map())
        segment_ids, segments = panoptic_segments(scene)
        write_png(os.path.join(self.layout.panoptic(self.split), name), id2rgb(segment_ids))
        annotations = []
        for obj in scene.objects:
            annotation = coco_annotation(image_id, obj.category + 1, obj.visible_mask)
            annotation["attributes"] = {"color": obj.color}
            annotations.append(annotation)
        return {"image": image_record(image_id, self.image_size), "annotations": annotations,
                "panoptic": {"image_id": image_id, "file_name": name, "segments_info": segments},
                "sentences": referring_sentences(scene.objects, rng, self.max_sentences)}

    def collect(self, record: dict) -> List[int]:
        ann_ids = super().collect(record)
        self.panoptic.append(record["panoptic"])
        for ann_id, sentences in zip(ann_ids, record["sentences"]):
            if sentences:
                first = self.num_sentences + 1
                self.num_sentences += len(sentences)
                self.refs.append({"ref_id": len(self.refs) + 1, "image_id": record["image"]["id"],
                                  "ann_id": ann_id, "sentences": sentences,
                                  "sent_ids": list(range(first, self.num_sentences + 1))})
        return ann_ids

    def finish(self) -> None:
        write_json(self.layout.instances_json(self.split), {
            "images": self.images, "annotations": self.annotations,
            "categories": thing_categories()})
        write_json(self.layout.panoptic_json(self.split), {
            "images": self.images, "annotations": self.panoptic,
            "categories": panoptic_categories()})
        write_json(self.layout.refs_json(self.split), self.refs)


class DetectionWriter(_AnnotatedImages):
    """Detection-only split: images + a COCO json whose annotations have boxes and no masks."""

    def __init__(self, layout: Layout, split: str, image_size: int):
        super().__init__()
        self.layout, self.split, self.image_size = layout, split, image_size

    def write_image(self, image_id: int, scene: Scene, rng: np.random.Generator) -> dict:
        write_png(os.path.join(self.layout.detection_images(self.split),
                               image_file_name(image_id)), scene.image)
        annotations = [coco_annotation(image_id, obj.category + 1, obj.visible_mask,
                                       with_mask=False) for obj in scene.objects]
        return {"image": image_record(image_id, self.image_size), "annotations": annotations}

    def finish(self) -> None:
        write_json(self.layout.detection_json(self.split), {
            "images": self.images, "annotations": self.annotations,
            "categories": thing_categories()})


class ForegroundWriter:
    """Foreground split: an image folder and a binary-mask folder with the same file names."""

    def __init__(self, layout: Layout, split: str):
        self.layout, self.split = layout, split

    def write_image(self, image_id: int, scene: Scene, rng: np.random.Generator) -> dict:
        name = image_file_name(image_id)
        write_png(os.path.join(self.layout.foreground_images(self.split), name), scene.image)
        (salient,) = scene.objects
        mask = salient.visible_mask.astype(np.uint8) * 255
        write_png(os.path.join(self.layout.foreground_masks(self.split), name), mask)
        return {}

    def collect(self, record: dict) -> None:
        """Nothing to gather: the split is only its image and mask files."""

    def finish(self) -> None:
        """Nothing beyond the per-image files."""


class SeginwWriter(_AnnotatedImages):
    """One split of one suite dataset, in SeginW's layout: the images and
    ``_annotations_min1cat.coco.json`` in one folder, 0-based contiguous category ids."""

    def __init__(self, layout: Layout, dataset: SuiteDataset, split: str, image_size: int):
        super().__init__()
        self.dataset, self.image_size = dataset, image_size
        self.folder = layout.seginw_dir(dataset.name, split)
        self.json_file = layout.seginw_json(dataset.name, split)

    def write_image(self, image_id: int, scene: Scene, rng: np.random.Generator) -> dict:
        write_png(os.path.join(self.folder, image_file_name(image_id)), scene.image)
        annotations = [coco_annotation(image_id, self.dataset.category_of(obj.color, obj.shape),
                                       obj.visible_mask) for obj in scene.objects]
        return {"image": image_record(image_id, self.image_size), "annotations": annotations}

    def finish(self) -> None:
        categories = [{"id": i, "name": name, "supercategory": self.dataset.name}
                      for i, name in enumerate(self.dataset.class_names)]
        write_json(self.json_file, {"images": self.images, "annotations": self.annotations,
                                    "categories": categories})
