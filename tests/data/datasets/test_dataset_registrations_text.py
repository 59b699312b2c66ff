"""Objects365, Visual Genome (detection: boxes + text, no masks) and RefCOCO-family registrations."""
import os
import json
import pickle

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from mqformer_d2.data.datasets import register_objects365, register_refcoco, register_visual_genome
from dataset_files import (
    H,
    W,
    by_prompt,
    coco_ann,
    coco_image,
    decode,
    rect_polygon,
    write_image,
    write_json,
)


def test_objects365(tmp_path):
    base = os.path.join(tmp_path, "objects365")
    write_image(os.path.join(base, "val/patch0/objects365_v1_00000001.jpg"))
    write_json(os.path.join(base, "annotations/zhiyuan_objv2_val.json"), {
        "images": [coco_image(1, "images/v1/patch0/objects365_v1_00000001.jpg")],
        "annotations": [coco_ann(1, 1, 2, 1, 2, 11, 12), coco_ann(2, 1, 1, 5, 5, 20, 20)],
        "categories": [{"id": 1, "name": "Person"}, {"id": 2, "name": "Sneakers"}],
    })
    register_objects365(str(tmp_path))
    meta = MetadataCatalog.get("objects365_v2_val")
    assert (meta.task, meta.evaluator_type) == ("detection", "coco")
    assert meta.text_prompts == ["person", "sneakers"]
    (record,) = DatasetCatalog.get("objects365_v2_val")
    assert os.path.isfile(record["file_name"])
    anns = by_prompt(record, meta)
    assert anns["sneakers"]["bbox"] == [1, 2, 10, 10] and anns["person"]["bbox"] == [5, 5, 15, 15]
    assert all(a["has_box"] and "segmentation" not in a for a in record["annotations"])


def write_visual_genome(root):
    base = os.path.join(root, "visual_genome")
    write_image(os.path.join(base, "VG_100K_2/1.jpg"))
    write_json(os.path.join(base, "image_data.json"), [
        {"image_id": 1, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
         "width": W, "height": H, "coco_id": None, "flickr_id": None}])
    write_json(os.path.join(base, "objects.json"), [{"image_id": 1, "objects": [
        {"object_id": 5, "x": 1, "y": 2, "w": 8, "h": 6, "names": ["Street_Light"], "synsets": []},
        {"object_id": 6, "x": 3, "y": 3, "w": 0, "h": 6, "names": ["line"], "synsets": []}]}])
    write_json(os.path.join(base, "region_descriptions.json"), [{"id": 1, "regions": [
        {"region_id": 7, "image_id": 1, "x": 4, "y": 5, "width": 10, "height": 9,
         "phrase": "a man riding a horse"}]}])


def test_visual_genome(tmp_path):
    write_visual_genome(str(tmp_path))
    register_visual_genome(str(tmp_path))
    (objects,) = DatasetCatalog.get("visual_genome_objects_train")
    (regions,) = DatasetCatalog.get("visual_genome_regions_train")
    assert os.path.isfile(objects["file_name"]) and (objects["height"], objects["width"]) == (H, W)
    (obj,) = objects["annotations"]  # the zero-width box is dropped
    assert obj["texts"] == ["street light"] and obj["bbox"] == [1, 2, 8, 6]
    (region,) = regions["annotations"]
    assert region["texts"] == ["a man riding a horse"] and region["bbox"] == [4, 5, 10, 9]
    for ann in (obj, region):
        assert ann["has_box"] and "segmentation" not in ann and "category_id" not in ann
    assert MetadataCatalog.get("visual_genome_regions_train").task == "detection"


def sentence(sent_id, text):
    return {"sent_id": sent_id, "sent": text, "raw": text.capitalize(), "tokens": text.split()}


def write_refcocog(root):
    """refcocog (umd): image 1 has two val refs (one with two sentences), image 2 a train ref."""
    base = os.path.join(root, "refcocog")
    for image_id in (1, 2):
        write_image(os.path.join(root, f"coco/train2014/COCO_train2014_{image_id:012d}.jpg"))
    refs = [
        {"ref_id": 10, "ann_id": 100, "image_id": 1, "split": "val", "category_id": 1,
         "sent_ids": [1000, 1001], "file_name": "COCO_train2014_000000000001_100.jpg",
         "sentences": [sentence(1000, "the man on the left"), sentence(1001, "a man in a red shirt")]},
        {"ref_id": 11, "ann_id": 101, "image_id": 1, "split": "val", "category_id": 18,
         "sent_ids": [1002], "file_name": "COCO_train2014_000000000001_101.jpg",
         "sentences": [sentence(1002, "the dog lying down")]},
        {"ref_id": 12, "ann_id": 102, "image_id": 2, "split": "train", "category_id": 1,
         "sent_ids": [1003], "file_name": "COCO_train2014_000000000002_102.jpg",
         "sentences": [sentence(1003, "a woman")]},
    ]
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "refs(umd).p"), "wb") as f:
        pickle.dump(refs, f, protocol=2)
    write_json(os.path.join(base, "instances.json"), {
        "images": [coco_image(i, f"COCO_train2014_{i:012d}.jpg") for i in (1, 2)],
        "annotations": [coco_ann(100, 1, 1, 2, 3, 10, 20), coco_ann(101, 1, 18, 12, 10, 30, 18),
                        coco_ann(102, 2, 1, 0, 0, 5, 5)],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    })


def test_refcocog_umd(tmp_path):
    write_refcocog(str(tmp_path))
    register_refcoco(str(tmp_path))
    meta = MetadataCatalog.get("refcocog_umd_val")
    assert (meta.task, meta.evaluator_type) == ("referring", "referring")
    (record,) = DatasetCatalog.get("refcocog_umd_val")
    assert record["file_name"].endswith("coco/train2014/COCO_train2014_000000000001.jpg")
    man, dog = record["annotations"]
    assert man["texts"] == ["the man on the left", "a man in a red shirt"]
    assert man["sent_ids"] == [1000, 1001] and (man["ref_id"], man["ann_id"]) == (10, 100)
    assert dog["texts"] == ["the dog lying down"] and dog["sent_ids"] == [1002]
    assert meta.text_prompts[man["category_id"]] == "person"
    assert meta.text_prompts[dog["category_id"]] == "dog"
    assert man["segmentation"] == rect_polygon(2, 3, 10, 20) and man["bbox"] == [2, 3, 8, 17]
    assert decode(dog["segmentation"]).sum() > 0 and man["has_box"]
    (train,) = DatasetCatalog.get("refcocog_umd_train")
    assert [a["texts"] for a in train["annotations"]] == [["a woman"]]


@pytest.mark.parametrize("field, value, message", [
    ("category_id", 12, "no COCO thing category (of the 80) with id 12"),  # 12 is not a COCO id
    ("ann_id", 999, "no annotation with id 101"),  # ref 11 still points to 101
    ("image_id", 7, "no image with id 1"),  # refs 10 and 11 still point to image 1
])
def test_refcocog_dangling_reference_names_ref_and_file(tmp_path, field, value, message):
    """A ref whose annotation, image or category is missing from instances.json: a ValueError that
    names the file and the ref, not a bare KeyError."""
    write_refcocog(str(tmp_path))
    instances_path = os.path.join(str(tmp_path), "refcocog", "instances.json")
    with open(instances_path) as f:
        instances = json.load(f)
    if field == "category_id":
        instances["annotations"][1]["category_id"] = value  # ann 101, ref 11's object
    elif field == "ann_id":
        instances["annotations"][1]["id"] = value
    else:
        instances["images"][0]["id"] = value  # image 1 (refs 10 and 11) is gone
    write_json(instances_path, instances)
    register_refcoco(str(tmp_path))
    with pytest.raises(ValueError, match="instances.json: ref 1[01]: no ") as error:
        DatasetCatalog.get("refcocog_umd_val")
    assert message in str(error.value)
