"""COCO (unified panoptic / instance) and LVIS registrations on tiny fixtures in official format."""
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from detectron2.data.datasets.lvis_v1_categories import LVIS_CATEGORIES
from panopticapi.utils import id2rgb

from mqformer_d2.data.annotation_checks import check_annotations
from mqformer_d2.data.datasets import clean_class_name, register_coco_unified
from dataset_files import (
    H,
    W,
    box_mask,
    by_prompt,
    coco_ann,
    coco_image,
    decode,
    rect_polygon,
    write_image,
    write_json,
    write_png,
    xywh,
)

COCO_IDS = {c["name"]: c["id"] for c in COCO_CATEGORIES}


def write_coco_panoptic(root):
    """val2017 image 1: a person and a car (things) on sky (stuff), plus an unlabeled strip."""
    masks = {
        "person": box_mask(2, 3, 10, 20),
        "car": box_mask(12, 10, 30, 18),
    }
    masks["sky-other-merged"] = ~(masks["person"] | masks["car"]) & box_mask(0, 0, W, H - 2)
    ids = np.zeros((H, W), np.int64)
    segments = []
    for i, (name, mask) in enumerate(masks.items()):
        ids[mask] = 100 + i
        segments.append({"id": 100 + i, "category_id": COCO_IDS[name], "iscrowd": 0,
                         "bbox": xywh(mask), "area": int(mask.sum())})
    write_image(os.path.join(root, "coco/val2017/000000000001.jpg"))
    write_png(os.path.join(root, "coco/panoptic_val2017/000000000001.png"), id2rgb(ids))
    write_json(os.path.join(root, "coco/annotations/panoptic_val2017.json"), {
        "images": [coco_image(1, "000000000001.jpg")],
        "annotations": [{"image_id": 1, "file_name": "000000000001.png", "segments_info": segments}],
        "categories": COCO_CATEGORIES,
    })
    return masks


def test_coco_unified_panoptic(tmp_path):
    masks = write_coco_panoptic(str(tmp_path))
    register_coco_unified(str(tmp_path))
    name = "coco_2017_val_unified_panoptic"
    meta = MetadataCatalog.get(name)
    assert (meta.task, meta.evaluator_type) == ("panoptic", "coco_panoptic_seg")
    (record,) = DatasetCatalog.get(name)
    assert (record["height"], record["width"]) == (H, W)
    anns = by_prompt(record, meta)
    assert set(anns) == {"person", "car", "sky"}
    for raw, prompt in [("person", "person"), ("car", "car"), ("sky-other-merged", "sky")]:
        assert (decode(anns[prompt]["segmentation"]) == masks[raw]).all()
        assert anns[prompt]["bbox"] == xywh(masks[raw])
    assert anns["person"]["has_box"] and anns["car"]["has_box"]
    assert not anns["sky"]["has_box"]


def test_coco_unified_instance(tmp_path):
    root = str(tmp_path)
    write_image(os.path.join(root, "coco/val2017/000000000001.jpg"))
    write_json(os.path.join(root, "coco/annotations/instances_val2017.json"), {
        "images": [coco_image(1, "000000000001.jpg")],
        "annotations": [coco_ann(1, 1, COCO_IDS["person"], 2, 3, 10, 20),
                        coco_ann(2, 1, COCO_IDS["traffic light"], 12, 10, 30, 18)],
        "categories": [c for c in COCO_CATEGORIES if c["isthing"]],
    })
    register_coco_unified(root)
    name = "coco_2017_val_unified_instance"
    meta = MetadataCatalog.get(name)
    assert (meta.task, meta.evaluator_type, len(meta.text_prompts)) == ("instance", "coco", 80)
    (record,) = DatasetCatalog.get(name)
    anns = by_prompt(record, meta)
    assert set(anns) == {"person", "traffic light"}
    assert anns["person"]["segmentation"] == rect_polygon(2, 3, 10, 20)
    assert anns["person"]["bbox"] == [2, 3, 8, 17]
    assert decode(anns["traffic light"]["segmentation"]).sum() > 0
    assert all(a["has_box"] for a in record["annotations"])


def test_coco_unified_instance_unknown_category_is_named(tmp_path):
    """An annotation whose category is not one of COCO's 80 things (12 is an unused COCO id): the
    loader keeps it with category None, and the data checks name its file, id and category."""
    root = str(tmp_path)
    write_image(os.path.join(root, "coco/val2017/000000000001.jpg"))
    write_json(os.path.join(root, "coco/annotations/instances_val2017.json"), {
        "images": [coco_image(1, "000000000001.jpg")],
        "annotations": [coco_ann(1, 1, COCO_IDS["person"], 2, 3, 10, 20), coco_ann(7, 1, 12, 12, 10, 30, 18)],
        "categories": [c for c in COCO_CATEGORIES if c["isthing"]] + [{"id": 12, "name": "street sign"}],
    })
    register_coco_unified(root)
    name = "coco_2017_val_unified_instance"
    (record,) = DatasetCatalog.get(name)
    person, unknown = record["annotations"]
    assert (person["category_id"], person["id"]) == (0, 1) and "unknown_category_id" not in person
    assert (unknown["category_id"], unknown["unknown_category_id"], unknown["id"]) == (None, 12, 7)
    with pytest.raises(ValueError, match=r"000000000001.jpg annotation id 7 \(category id 12\)"):
        check_annotations(name, DatasetCatalog.get(name), policy="error")


def test_lvis_unified(tmp_path):
    root = str(tmp_path)
    write_image(os.path.join(root, "coco/val2017/000000000001.jpg"))
    image = coco_image(1, None)
    image.update(coco_url="http://images.cocodataset.org/val2017/000000000001.jpg",
                 not_exhaustive_category_ids=[5], neg_category_ids=[7])
    write_json(os.path.join(root, "lvis/lvis_v1_val.json"), {
        "images": [image],
        "annotations": [coco_ann(1, 1, 1, 2, 3, 10, 20), coco_ann(2, 1, 3, 12, 10, 30, 18)],
        "categories": LVIS_CATEGORIES,
    })
    register_coco_unified(root)
    meta = MetadataCatalog.get("lvis_v1_val_unified")
    assert (meta.task, meta.evaluator_type, len(meta.text_prompts)) == ("instance", "lvis", 1203)
    (record,) = DatasetCatalog.get("lvis_v1_val_unified")
    assert record["file_name"] == os.path.join(root, "coco", "val2017", "000000000001.jpg")
    assert record["neg_category_ids"] == [7]
    names = {c["id"]: clean_class_name(c["synonyms"][0]) for c in LVIS_CATEGORIES}
    assert [meta.text_prompts[a["category_id"]] for a in record["annotations"]] == [names[1], names[3]]
    assert record["annotations"][0]["segmentation"] == rect_polygon(2, 3, 10, 20)
