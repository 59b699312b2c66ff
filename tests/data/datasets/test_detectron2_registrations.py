"""Datasets registered the detectron2 way (its own functions, files in its formats) train and
evaluate through train_net.py with no other code: the task and the text prompts come from the
metadata detectron2 sets and from the records."""
import os
from contextlib import contextmanager

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_coco_panoptic
from detectron2.data.datasets.builtin import _root as builtin_root
from detectron2.data.datasets.builtin import register_all_ade20k
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES, _get_builtin_metadata

from detectron2_format_fixtures import write_ade20k_semantic, write_coco_instances, write_coco_panoptic
from helpers import TINY_CONFIG, TINY_OPTIONS, load_train_net, train_net_args
from helpers import registered
from mqformer_d2.data.detectron2_datasets import adapt_detectron2_dataset, task_of_records

torch.set_num_threads(2)
TRAIN_OPTIONS = [*TINY_OPTIONS, "SOLVER.MAX_ITER", 2, "TEST.EVAL_PERIOD", 0, "INPUT.NUM_NEGATIVE_TEXTS", 2]


@contextmanager
def metadata_kept(*names):
    """Restore the metadata of `names` (e.g. detectron2's builtins) as it was before the block."""
    saved = {name: dict(MetadataCatalog.get(name).__dict__) for name in names}
    try:
        yield
    finally:
        for name, values in saved.items():
            MetadataCatalog.remove(name)
            MetadataCatalog.get(name).__dict__.update(values)


def run_train_net(output_dir, train, test):
    """train_net.py in-process: 2 iterations on `train`, then the real evaluators on `test`; the
    results of `test` (detectron2 returns a single test set's results unnested)."""
    return load_train_net().main(train_net_args(
        "--config-file", TINY_CONFIG, *TRAIN_OPTIONS, "DATASETS.TRAIN", repr((train,)),
        "DATASETS.TEST", repr((test,)), "OUTPUT_DIR", output_dir))


def test_register_coco_instances_trains_and_evaluates(tmp_path):
    json_file, image_root = write_coco_instances(str(tmp_path / "data"))
    with registered(("d2fmt_parts_train", "d2fmt_parts_val")):
        register_coco_instances("d2fmt_parts_train", {}, json_file, image_root)
        register_coco_instances("d2fmt_parts_val", {}, json_file, image_root)
        results = run_train_net(str(tmp_path / "run"), "d2fmt_parts_train", "d2fmt_parts_val")
        metadata = MetadataCatalog.get("d2fmt_parts_val")
        assert metadata.task == "instance"
        assert metadata.text_prompts == ["red square", "blue bar"]  # json ids 3, 7 -> 0, 1
    assert set(results) == {"bbox", "segm"}
    assert 0 <= results["segm"]["AP"] <= 100


def test_register_coco_panoptic_trains_and_evaluates(tmp_path):
    paths = write_coco_panoptic(str(tmp_path / "data"))
    metadata = _get_builtin_metadata("coco_panoptic_standard")
    with registered(("d2fmt_pan_train", "d2fmt_pan_val")):
        for name in ("d2fmt_pan_train", "d2fmt_pan_val"):
            register_coco_panoptic(name, metadata, paths["image_root"], paths["panoptic_root"],
                                   paths["panoptic_json"], paths["instances_json"])
        results = run_train_net(str(tmp_path / "run"), "d2fmt_pan_train", "d2fmt_pan_val")
        prompts = MetadataCatalog.get("d2fmt_pan_val").text_prompts
        assert MetadataCatalog.get("d2fmt_pan_val").task == "panoptic"
        assert len(prompts) == 133 and prompts[0] == "person" and "grass" in prompts
    assert "PQ" in results["panoptic_seg"]


def test_detectron2_panoptic_records_become_one_target_per_segment(tmp_path):
    """The training mapper turns a panoptic record (PNG + segments_info) into its 3 segments."""
    from mqformer_d2.data import UnifiedDatasetMapper, load_tagged_dataset_dicts
    from helpers import tiny_config

    paths = write_coco_panoptic(str(tmp_path / "data"), count=1)
    with registered(("d2fmt_pan_map",)):
        register_coco_panoptic("d2fmt_pan_map", _get_builtin_metadata("coco_panoptic_standard"),
                               paths["image_root"], paths["panoptic_root"], paths["panoptic_json"])
        records, _ = load_tagged_dataset_dicts(["d2fmt_pan_map"], training=True)
        mapped = UnifiedDatasetMapper(tiny_config("INPUT.MIN_SCALE", 1.0, "INPUT.MAX_SCALE", 1.0), True)(records[0])
    texts = {mapped["vocabulary"][i] for i in mapped["instances"].gt_text_ids.tolist()}
    assert texts == {"person", "dog", "grass"}
    has_box = dict(zip([mapped["vocabulary"][i] for i in mapped["instances"].gt_text_ids.tolist()],
                       mapped["instances"].gt_has_box.tolist()))
    assert has_box == {"person": True, "dog": True, "grass": False}  # stuff has no box


@pytest.fixture
def ade20k_builtin(tmp_path):
    """detectron2's builtin ade20k_sem_seg_{train,val}, re-registered by detectron2's own
    register_all_ade20k over a tiny ADE20K folder; the builtin root is restored afterwards."""
    names = ("ade20k_sem_seg_train", "ade20k_sem_seg_val")

    def reregister(root):
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_all_ade20k(root)

    for split in ("training", "validation"):
        write_ade20k_semantic(str(tmp_path / "data"), split)
    reregister(str(tmp_path / "data"))
    try:
        yield names
    finally:
        reregister(builtin_root)


def test_builtin_ade20k_sem_seg_trains_and_evaluates(tmp_path, ade20k_builtin):
    train, val = ade20k_builtin
    results = run_train_net(str(tmp_path / "run"), train, val)
    metadata = MetadataCatalog.get(val)
    assert metadata.task == "semantic" and len(metadata.text_prompts) == len(ADE20K_SEM_SEG_CATEGORIES) == 150
    assert 0 <= results["sem_seg"]["mIoU"] <= 100


@pytest.mark.parametrize("name, task, count, first", [
    ("coco_2017_val", "instance", 80, "person"),
    ("coco_2017_val_panoptic", "panoptic", 133, "person"),
    ("coco_2017_val_panoptic_stuffonly", "semantic", 54, "things"),
    ("ade20k_sem_seg_val", "semantic", 150, "wall"),
])
def test_builtin_metadata_gets_a_task_and_prompts_without_loading(name, task, count, first):
    with metadata_kept(name):
        assert MetadataCatalog.get(name).get("text_prompts", None) is None
        adapt_detectron2_dataset(name)
        metadata = MetadataCatalog.get(name)
        assert (metadata.task, len(metadata.text_prompts), metadata.text_prompts[0]) == (task, count, first)


def test_separated_panoptic_is_refused_naming_the_standard_registration():
    name = "coco_2017_val_panoptic_separated"
    with metadata_kept(name), pytest.raises(ValueError, match=f"{name}.*separated.*coco_2017_train_panoptic"):
        adapt_detectron2_dataset(name)


def test_own_metadata_is_never_changed():
    with registered(("d2fmt_own",)):
        MetadataCatalog.get("d2fmt_own").set(thing_classes=["cat"], text_prompts=["a cat"], task="detection",
                                             evaluator_type="coco")
        adapt_detectron2_dataset("d2fmt_own", [{"annotations": [{"segmentation": [[0, 0, 1, 0, 1, 1]]}]}])
        assert (MetadataCatalog.get("d2fmt_own").task, MetadataCatalog.get("d2fmt_own").text_prompts) == (
            "detection", ["a cat"])


@pytest.mark.parametrize("records, task", [
    ([{"pan_seg_file_name": "a.png", "segments_info": []}], "panoptic"),
    ([{"sem_seg_file_name": "a.png"}], "semantic"),
    ([{"annotations": [{"bbox": [0, 0, 2, 2]}, {"bbox": [1, 1, 2, 2], "segmentation": [[0, 0, 1, 0, 1, 1]]}]}],
     "instance"),
    ([{"annotations": [{"bbox": [0, 0, 2, 2]}]}], "detection"),
    ([{"annotations": []}], None),
])
def test_task_of_records(records, task):
    assert task_of_records(records) == task


def test_a_dataset_whose_json_has_no_masks_is_a_detection_dataset(tmp_path):
    json_file, image_root = write_coco_instances(str(tmp_path / "data"))
    with registered(("d2fmt_boxes",)):
        register_coco_instances("d2fmt_boxes", {}, json_file, image_root)
        records = [dict(r, annotations=[{k: v for k, v in a.items() if k != "segmentation"}
                                        for a in r["annotations"]]) for r in DatasetCatalog.get("d2fmt_boxes")]
        adapt_detectron2_dataset("d2fmt_boxes", records)
        assert MetadataCatalog.get("d2fmt_boxes").task == "detection"
        assert os.path.isfile(MetadataCatalog.get("d2fmt_boxes").json_file)
