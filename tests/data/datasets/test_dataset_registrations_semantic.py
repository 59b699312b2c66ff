"""ADE20K-150 (semantic, panoptic), Pascal Context 59/459 and BDD registrations on tiny fixtures."""
import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from panopticapi.utils import id2rgb
from PIL import Image

from mqformer_d2.data import load_tagged_dataset_dicts
from mqformer_d2.data.datasets import register_ade20k, register_bdd, register_pascal_context
from dataset_files import (
    H,
    W,
    box_mask,
    by_prompt,
    decode,
    write_image,
    write_json,
    write_png,
    xywh,
)


def label_map(regions, ignore, dtype=np.uint8):
    """A label map filled with ``ignore`` and the given {label: mask} regions."""
    labels = np.full((H, W), ignore, dtype)
    for value, mask in regions.items():
        labels[mask] = value
    return labels


def check_semantic(name, regions, prompts, task="semantic"):
    """The record of ``name`` has one target per label, mask and prompt as written, no box."""
    meta = MetadataCatalog.get(name)
    assert (meta.task, meta.evaluator_type) == (task, "sem_seg")
    (record,) = DatasetCatalog.get(name)
    assert record["sem_seg_file_name"].startswith(meta.sem_seg_root)
    anns = by_prompt(record, meta)
    assert set(anns) == set(prompts.values())
    for value, mask in regions.items():
        ann = anns[prompts[value]]
        assert (decode(ann["segmentation"]) == mask).all()
        assert ann["has_box"] is False and ann["bbox"] == xywh(mask)


def test_ade20k_semantic(tmp_path):
    base = os.path.join(tmp_path, "ADEChallengeData2016")
    regions = {0: box_mask(0, 0, W, 8), 12: box_mask(4, 10, 12, 22)}
    write_image(os.path.join(base, "images/validation/ADE_val_00000001.jpg"))
    write_png(os.path.join(base, "annotations_detectron2/validation/ADE_val_00000001.png"),
              label_map(regions, 255))
    register_ade20k(str(tmp_path))
    check_semantic("ade20k_150_sem_seg_val", regions, {0: "wall", 12: "person"})


def test_ade20k_panoptic(tmp_path):
    base = os.path.join(tmp_path, "ADEChallengeData2016")
    masks = {0: box_mask(0, 0, W, 8), 12: box_mask(4, 10, 12, 22)}  # wall (stuff), person (thing)
    ids = np.zeros((H, W), np.int64)
    segments = []
    for category, mask in masks.items():
        ids[mask] = 1000 + category
        segments.append({"id": 1000 + category, "category_id": category, "iscrowd": 0,
                         "bbox": xywh(mask), "area": int(mask.sum())})
    write_image(os.path.join(base, "images/validation/ADE_val_00000001.jpg"))
    write_png(os.path.join(base, "ade20k_panoptic_val/ADE_val_00000001.png"), id2rgb(ids))
    write_json(os.path.join(base, "ade20k_panoptic_val.json"), {
        "images": [{"id": "ADE_val_00000001", "file_name": "ADE_val_00000001.jpg",
                    "height": H, "width": W}],
        "annotations": [{"image_id": "ADE_val_00000001", "file_name": "ADE_val_00000001.png",
                         "segments_info": segments}],
        "categories": [],
    })
    register_ade20k(str(tmp_path))
    meta = MetadataCatalog.get("ade20k_150_panoptic_val")
    assert (meta.task, meta.evaluator_type, len(meta.text_prompts)) == ("panoptic", "coco_panoptic_seg", 150)
    assert len(meta.thing_classes) == 100
    (record,) = DatasetCatalog.get("ade20k_150_panoptic_val")
    assert record["image_id"] == "ADE_val_00000001"
    assert record["sem_seg_file_name"].endswith("annotations_detectron2/validation/ADE_val_00000001.png")
    anns = by_prompt(record, meta)
    assert (anns["wall"]["has_box"], anns["person"]["has_box"]) == (False, True)
    assert (decode(anns["person"]["segmentation"]) == masks[12]).all()
    assert (decode(anns["wall"]["segmentation"]) == masks[0]).all()


@pytest.mark.parametrize("variant", [59, 459])
def test_pascal_context(tmp_path, variant):
    base = os.path.join(tmp_path, "VOCdevkit/VOC2010")
    write_image(os.path.join(base, "JPEGImages/2008_000002.jpg"))
    write_image(os.path.join(base, "JPEGImages/2008_000003.jpg"))  # an image of another split
    if variant == 59:
        regions, prompts = {0: box_mask(0, 0, 9, 9), 39: box_mask(10, 10, 20, 20)}, {0: "aeroplane", 39: "potted plant"}
        gt = os.path.join(base, "annotations_detectron2/pc59_val/2008_000002.png")
        write_png(gt, label_map(regions, 255))
    else:
        regions, prompts = {0: box_mask(0, 0, 9, 9), 300: box_mask(10, 10, 20, 20)}, {0: "accordion", 300: "poker"}
        gt = os.path.join(base, "annotations_detectron2/pc459_val/2008_000002.tif")
        os.makedirs(os.path.dirname(gt))
        Image.fromarray(label_map(regions, 65535, np.uint16)).save(gt)
    register_pascal_context(str(tmp_path))
    name = f"pascal_context_{variant}_sem_seg_val"
    assert len(MetadataCatalog.get(name).text_prompts) == variant
    check_semantic(name, regions, prompts)


def test_bdd_semantic(tmp_path):
    base = os.path.join(tmp_path, "bdd100k")
    regions = {0: box_mask(0, 12, W, H), 6: box_mask(2, 2, 6, 8), 13: box_mask(10, 4, 24, 12)}
    write_image(os.path.join(base, "images/10k/val/7d2f7975-e0c1c5a7.jpg"))
    write_png(os.path.join(base, "labels/sem_seg/masks/val/7d2f7975-e0c1c5a7.png"), label_map(regions, 255))
    register_bdd(str(tmp_path))
    check_semantic("bdd10k_sem_seg_val", regions, {0: "road", 6: "traffic light", 13: "car"})


def write_ade20k_panoptic(tmp_path, segments_by_category):
    """An ADE20K panoptic val split of one image; {category: mask} segments (mask None: listed in
    segments_info with an id the PNG does not hold)."""
    base = os.path.join(tmp_path, "ADEChallengeData2016")
    ids, segments = np.zeros((H, W), np.int64), []
    for index, (category, mask) in enumerate(segments_by_category):
        segment_id = 1000 + index
        if mask is not None:
            ids[mask] = segment_id
        segments.append({"id": segment_id, "category_id": category, "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1})
    write_image(os.path.join(base, "images/validation/ADE_val_00000001.jpg"))
    png = write_png(os.path.join(base, "ade20k_panoptic_val/ADE_val_00000001.png"), id2rgb(ids))
    write_json(os.path.join(base, "ade20k_panoptic_val.json"), {
        "images": [], "categories": [],
        "annotations": [{"image_id": "ADE_val_00000001", "file_name": "ADE_val_00000001.png",
                         "segments_info": segments}]})
    register_ade20k(str(tmp_path))
    return png


def test_a_panoptic_segment_of_an_unmapped_category_is_named_and_dropped(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("mqformer_d2"), "propagate", True)
    write_ade20k_panoptic(tmp_path, [(12, box_mask(4, 10, 12, 22)), (150, box_mask(0, 0, W, 8))])
    records = DatasetCatalog.get("ade20k_150_panoptic_val")  # ADE20K-150 ids are 0..149: 150 is unknown
    (annotation,) = [a for a in records[0]["annotations"] if a["category_id"] is None]
    assert annotation["unknown_category_id"] == 150 and annotation["id"] == 1001
    load_tagged_dataset_dicts(["ade20k_150_panoptic_val"])  # as evaluation loads it
    (warning,) = [r.getMessage() for r in caplog.records if "unknown category" in r.getMessage()]
    assert "'ade20k_150_panoptic_val': 1 annotation(s) with unknown category" in warning
    assert "ADE_val_00000001.jpg annotation id 1001 (category id 150)" in warning


def test_panoptic_segments_without_pixels_are_counted_in_one_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("mqformer_d2"), "propagate", True)
    png = write_ade20k_panoptic(tmp_path, [(12, box_mask(4, 10, 12, 22)), (0, None), (3, None)])
    (record,) = DatasetCatalog.get("ade20k_150_panoptic_val")
    assert [a["id"] for a in record["annotations"]] == [1000]
    (warning,) = [r.getMessage() for r in caplog.records if "no pixel" in r.getMessage()]
    assert "ade20k_panoptic_val.json: 2 of 3 segments_info entries have no pixel in their panoptic PNG" in warning
    assert f"{png} segment id 1001; {png} segment id 1002" in warning
