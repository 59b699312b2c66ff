"""Before training, bad annotations of each training set are counted and reported per reason (or
refused with DATALOADER.BAD_ANNOTATIONS "error"), and a set with no usable target or a missing
image file is an error. Fixtures: tiny COCO jsons (plus the synthetic-caption json's ``texts`` for
referring data) and PNGs in tmp dirs."""
import io
import json
import logging
import uuid
from contextlib import contextmanager

import numpy as np
import pytest
from detectron2.config import get_cfg
from PIL import Image

from helpers import temporary_datasets

from mqformer_d2.data import UnifiedDatasetMapper, build_unified_train_loader, load_tagged_dataset_dicts
from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.datasets.common import load_json
from mqformer_d2.data.datasets.coco_format import coco_records
from mqformer_d2.synthetic import load_synthetic_json
from mqformer_d2.synthetic.outputs import coco_base_annotation

WIDTH, HEIGHT = 8, 6
GOOD = {"id": 1, "category_id": 1, "bbox": [1, 1, 4, 3], "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]}
SENTENCE = {"texts": ["the cup on the left"]}
# reason -> (bad annotation with id 2, task)
BAD = {
    "degenerate box": ({"category_id": 1, "bbox": [2, 2, 0, 3]}, "instance"),
    "out-of-image": ({"category_id": 1, "bbox": [5, 3, 10, 2]}, "instance"),
    "empty polygon": ({"category_id": 1, "bbox": [1, 1, 2, 2], "segmentation": [[1, 1, 2, 2]]}, "instance"),
    "no sentence": ({"category_id": 1, "bbox": [1, 1, 2, 2]}, "referring"),
    "unknown category": ({"category_id": 42, "bbox": [1, 1, 2, 2]}, "instance"),
}


def write_coco(folder, annotations, images=("a.png",), written=("a.png",)):
    """A COCO json (one category, id 1: "cup") over `images`, of which `written` exist as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in written:
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(folder / file_name)
    info = {"categories": [{"id": 1, "name": "cup"}],
            "images": [{"id": i + 1, "file_name": f, "height": HEIGHT, "width": WIDTH} for i, f in enumerate(images)],
            "annotations": [dict({"image_id": 1, "iscrowd": 0}, **a) for a in annotations]}
    path = folder / "annotations.json"
    path.write_text(json.dumps(info))
    return str(path)


@pytest.fixture
def register(tmp_path):
    """register(annotations, task=..., **write_coco options) -> a new dataset name on the json."""

    def _register(annotations, task="instance", **files):
        folder = tmp_path / uuid.uuid4().hex[:8]
        json_file, root = write_coco(folder, annotations, **files), str(folder)
        # Referring data keeps its sentences: the synthetic-caption json format ("texts").
        loader = (lambda: load_synthetic_json(json_file, root)) if task == "referring" else (
            lambda: coco_records(load_json(json_file), root))
        return register_temporary(loader, task=task, evaluator_type="coco", text_prompts=["cup"],
                                  thing_classes=["cup"], json_file=json_file)

    with temporary_datasets("test_checks") as register_temporary:
        yield _register


@contextmanager
def collected_warnings():
    """The check module's log lines (a handler of its own: training set-up elsewhere in the suite
    stops package loggers propagating)."""
    stream, logger = io.StringIO(), logging.getLogger("mqformer_d2.data.annotation_checks")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def data_cfg(policy="warn", train=()):
    cfg = get_cfg()
    add_mqformer_config(cfg)
    cfg.DATALOADER.BAD_ANNOTATIONS = policy
    cfg.DATASETS.TRAIN = tuple(train)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 1
    return cfg


def bad_and_good(reason):
    bad, task = BAD[reason]
    annotations = [GOOD, dict(bad, id=2)]
    return [dict(a, **SENTENCE) if task == "referring" and a is GOOD else a for a in annotations], task


@pytest.mark.parametrize("reason", list(BAD))
def test_each_bad_annotation_gets_one_summary_line_naming_dataset_file_and_annotation(register, reason):
    annotations, task = bad_and_good(reason)
    name = register(annotations, task=task)
    with collected_warnings() as log:
        dicts, _ = load_tagged_dataset_dicts([name], "warn", training=True)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert f"dataset '{name}': 1 annotation(s) with {reason}" in lines[0]
    assert "a.png annotation id 2" in lines[0]
    assert len(dicts) == 1


@pytest.mark.parametrize("reason", list(BAD))
def test_bad_annotations_are_errors_with_the_config_switch(register, reason):
    annotations, task = bad_and_good(reason)
    name = register(annotations, task=task)
    cfg = data_cfg("error", [name])
    with pytest.raises(ValueError, match=f"dataset '{name}': 1 annotation\\(s\\) with {reason} .*a.png annotation id 2"):
        build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True))


def test_counts_many_in_one_line_with_a_few_examples(register):
    degenerate = [{"id": 10 + i, "category_id": 1, "bbox": [1, 1, 0, 2]} for i in range(5)]
    name = register([GOOD, *degenerate])
    with collected_warnings() as log:
        load_tagged_dataset_dicts([name], "warn", training=True)
    (line,) = log.getvalue().splitlines()
    assert "5 annotation(s) with degenerate box" in line
    assert "annotation id 10" in line and "annotation id 12" in line and "annotation id 13" not in line


def test_unknown_category_names_the_json_id_and_is_dropped(register):
    name = register([GOOD, {"id": 99, "category_id": 42, "bbox": [1, 1, 2, 2]}])
    with collected_warnings() as log:
        dicts, _ = load_tagged_dataset_dicts([name], "warn", training=True)
    assert "annotation id 99 (category id 42)" in log.getvalue()
    assert [a["id"] for a in dicts[0]["annotations"]] == [1]


def test_empty_polygons_become_box_only_targets(register):
    # A polygon of 2 points and a polygon of 3 points on one line: no area either way.
    flat = {"id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "segmentation": [[1, 1, 2, 2, 3, 3]]}
    name = register([GOOD, dict(BAD["empty polygon"][0], id=2), flat])
    with collected_warnings() as log:
        dicts, _ = load_tagged_dataset_dicts([name], "warn", training=True)
    assert "2 annotation(s) with empty polygon" in log.getvalue()
    assert ["segmentation" in a for a in dicts[0]["annotations"]] == [True, False, False]
    mapper = UnifiedDatasetMapper(is_train=True, augmentations=[], image_format="RGB", num_negative_texts=0)
    instances = mapper(dicts[0])["instances"]
    assert instances.gt_has_mask.tolist() == [True, False, False]


def test_a_training_set_whose_boxes_are_all_degenerate_is_an_error_naming_it(register):
    name = register([{"id": i, "category_id": 1, "bbox": [1, 1, 0, 3]} for i in (1, 2)])
    good = register([GOOD])
    cfg = data_cfg("warn", [good, name])
    with pytest.raises(ValueError, match=f"dataset '{name}': no usable training target in its 1 images "
                                         "\\(2 degenerate box\\)"):
        build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True))


def test_a_training_set_without_annotations_is_an_error(register):
    name = register([])
    with pytest.raises(ValueError, match=f"dataset '{name}': no usable training target .*no annotations"):
        load_tagged_dataset_dicts([name], "warn", training=True)


def test_test_sets_are_reported_but_never_refused(register):
    name = register([{"id": 1, "category_id": 1, "bbox": [1, 1, 0, 3]}])
    with collected_warnings() as log:
        dicts, _ = load_tagged_dataset_dicts([name])  # the evaluation loader's call
    assert "1 annotation(s) with degenerate box" in log.getvalue() and len(dicts) == 1


def test_missing_image_files_fail_before_training_naming_dataset_and_files(register):
    name = register([GOOD], images=("a.png", "b.png", "c.png"), written=("a.png",))
    cfg = data_cfg("warn", [name])
    with pytest.raises(FileNotFoundError, match=f"dataset '{name}': 2 file\\(s\\) of its 3 training images "
                                                "are missing: .*b.png, .*c.png"):
        build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True))


def test_an_unknown_policy_names_the_config_key(register):
    name = register([GOOD])
    cfg = data_cfg("ignore", [name])
    with pytest.raises(ValueError, match="DATALOADER.BAD_ANNOTATIONS must be one of"):
        build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True))


def test_a_clean_training_set_says_nothing_and_loads(register):
    name = register([GOOD, dict(GOOD, id=2, iscrowd=1)])
    with collected_warnings() as log:
        dicts, sizes = load_tagged_dataset_dicts([name], "error", training=True)
    assert log.getvalue() == "" and sizes == [1] and len(dicts[0]["annotations"]) == 2


def test_synthetic_data_tools_write_an_unknown_category_back_as_the_source_has_it(tmp_path):
    json_file = write_coco(tmp_path, [GOOD, {"id": 2, "category_id": 42, "bbox": [1, 1, 2, 2]}])
    annotations = coco_records(load_json(json_file), str(tmp_path))[0]["annotations"]
    written = [coco_base_annotation(a, 1, {0: 1}) for a in annotations]
    assert [a["category_id"] for a in written] == [1, 42]
