"""SeginW (and SeginW-format suites), foreground pairs, and behaviour common to every family:
registration touches no file, a missing dataset names the missing path, metadata is complete.
Family-specific fixtures: test_dataset_registrations_{coco,semantic,text}.py."""
import builtins
import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from mqformer_d2.data.datasets import (
    DatasetNotFoundError,
    JsonCategoryMetadata,
    SEGINW_NAMES,
    clean_class_name,
    register_all,
    register_foreground,
    register_foreground_pairs,
    register_seginw,
    register_seginw_style_suite,
)
from dataset_files import (
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

TASKS = {"instance", "semantic", "panoptic", "referring", "foreground", "detection"}
# One registered name per family, to check the missing-data error of each.
ONE_PER_FAMILY = [
    "coco_2017_val_unified_panoptic", "coco_2017_val_unified_instance", "lvis_v1_val_unified",
    "ade20k_150_sem_seg_val", "ade20k_150_panoptic_val", "pascal_context_59_sem_seg_val",
    "pascal_context_459_sem_seg_val", "bdd10k_sem_seg_val", "objects365_v2_val",
    "visual_genome_objects_train", "refcoco_unc_testA", "refcoco+_unc_val", "refcocog_google_val",
    "seginw_Cows_val", "duts_test", "hrsod_train", "uhrsd_test",
]  # fmt: skip


def write_seginw_split(folder, categories):
    """A SeginW split: one image, one rectangle per category (0-based ids)."""
    write_image(os.path.join(folder, "img_0001.jpg"))
    anns = [coco_ann(i + 1, 1, c["id"], 2 + 8 * i, 2, 8 + 8 * i, 20) for i, c in enumerate(categories)]
    write_json(os.path.join(folder, "_annotations_min1cat.coco.json"), {
        "images": [coco_image(1, "img_0001.jpg")], "annotations": anns, "categories": categories})


def test_seginw(tmp_path):
    categories = [{"id": 0, "name": "cow"}, {"id": 1, "name": "Cow_Head"}]
    write_seginw_split(os.path.join(tmp_path, "seginw/Cows/valid"), categories)
    registered = register_seginw(str(tmp_path))
    assert {f"seginw_{n}_{s}" for n in SEGINW_NAMES for s in ("train", "val")} <= set(registered)
    meta = MetadataCatalog.get("seginw_Cows_val")
    assert (meta.task, meta.evaluator_type) == ("instance", "seginw")
    assert meta.json_file.endswith("seginw/Cows/valid/_annotations_min1cat.coco.json")
    assert meta.text_prompts == ["cow", "cow head"] and meta.thing_classes == ["cow", "Cow_Head"]
    assert meta.thing_dataset_id_to_contiguous_id == {0: 0, 1: 1}
    (record,) = DatasetCatalog.get("seginw_Cows_val")
    anns = by_prompt(record, meta)
    assert anns["cow"]["segmentation"] == rect_polygon(2, 2, 8, 20)
    assert anns["cow head"]["bbox"] == [10, 2, 6, 18] and anns["cow head"]["has_box"]


def test_seginw_style_suite(tmp_path):
    """Another suite in SeginW's format registers and loads through the same functions."""
    write_seginw_split(os.path.join(tmp_path, "colours/train"), [{"id": 0, "name": "red"}])
    names = register_seginw_style_suite(str(tmp_path), ["colours"], "toy_suite")
    assert "toy_suite_colours_train" in names
    meta = MetadataCatalog.get("toy_suite_colours_val")
    assert (meta.evaluator_type, meta.suite, meta.suite_dataset) == ("seginw", "toy_suite", "colours")
    (record,) = DatasetCatalog.get("toy_suite_colours_train")
    assert [MetadataCatalog.get("toy_suite_colours_train").text_prompts[a["category_id"]]
            for a in record["annotations"]] == ["red"]


def test_foreground_pairs(tmp_path):
    base = os.path.join(tmp_path, "DUTS/DUTS-TE")
    mask = box_mask(5, 4, 20, 18)
    write_image(os.path.join(base, "DUTS-TE-Image/ILSVRC2012_test_00000003.jpg"))
    write_png(os.path.join(base, "DUTS-TE-Mask/ILSVRC2012_test_00000003.png"), mask.astype(np.uint8) * 255)
    register_foreground(str(tmp_path))
    meta = MetadataCatalog.get("duts_test")
    assert (meta.task, meta.evaluator_type, meta.text_prompts) == ("foreground", "foreground", ["foreground"])
    (record,) = DatasetCatalog.get("duts_test")
    (ann,) = record["annotations"]
    assert (decode(ann["segmentation"]) == mask).all() and ann["bbox"] == xywh(mask)
    assert ann["category_id"] == 0 and ann["has_box"]
    register_foreground_pairs("my_salient_set", os.path.join(base, "DUTS-TE-Image"),
                              os.path.join(base, "DUTS-TE-Mask"))
    assert DatasetCatalog.get("my_salient_set")[0]["annotations"][0]["bbox"] == xywh(mask)


def test_registration_touches_no_file(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"registration touched the disk: {args}")

    for module, attribute in [(builtins, "open"), (os, "listdir"), (os, "scandir"), (os, "stat"),
                              (os.path, "exists"), (os.path, "isfile"), (os.path, "isdir")]:
        monkeypatch.setattr(module, attribute, forbidden)
    register_all(os.path.join(tmp_path, "nowhere"))
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(tmp_path, "nowhere"))


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_missing_dataset_names_the_path(tmp_path, name):
    root = os.path.join(tmp_path, "empty_root")
    register_all(root)
    with pytest.raises(DatasetNotFoundError) as error:
        DatasetCatalog.get(name)
    assert root in str(error.value) and "datasets/README.md" in str(error.value)


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_metadata_has_task_evaluator_and_prompts(name):
    meta = MetadataCatalog.get(name)
    assert meta.task in TASKS and hasattr(meta, "evaluator_type")
    if not isinstance(meta, JsonCategoryMetadata):  # those read their prompts from the json
        assert all(p == clean_class_name(p) for p in meta.text_prompts)


@pytest.mark.parametrize("raw, clean", [
    ("traffic_light", "traffic light"), ("pottedplant", "potted plant"), ("Potted Plant", "potted plant"),
    ("wall-other-merged", "wall"), ("road, route", "road"), ("bow_(weapon)", "bow weapon"),
    ("hot-air balloon", "hot air balloon"), ("Hand-Metal", "hand metal"),
])  # fmt: skip
def test_clean_class_name(raw, clean):
    assert clean_class_name(raw) == clean


def test_annotations_of_an_unknown_image_id_are_counted_in_one_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("mqformer_d2"), "propagate", True)
    folder = os.path.join(tmp_path, "suite/Gears/valid")
    write_image(os.path.join(folder, "img_0001.jpg"))
    anns = [coco_ann(1, 1, 0, 2, 2, 8, 20), coco_ann(2, 7, 0, 2, 2, 8, 20), coco_ann(3, 9, 0, 2, 2, 8, 20)]
    json_file = write_json(os.path.join(folder, "_annotations_min1cat.coco.json"), {
        "images": [coco_image(1, "img_0001.jpg")], "annotations": anns, "categories": [{"id": 0, "name": "gear"}]})
    (name,) = [n for n in register_seginw_style_suite(str(tmp_path / "suite"), names=["Gears"], prefix="t_suite")
               if n.endswith("_val")]
    (record,) = DatasetCatalog.get(name)
    assert [a["id"] for a in record["annotations"]] == [1]
    (warning,) = [r.getMessage() for r in caplog.records if "image_id" in r.getMessage()]
    assert warning.startswith(f"{json_file}: 2 annotation(s) have an image_id that is not in its 'images' and are "
                              "dropped, e.g. annotation id 2 (image_id 7); annotation id 3 (image_id 9)")
