"""Start-up checks: a typo in DATASETS.TRAIN / DATASETS.TEST fails, naming the key and close names;
a test set whose metadata lacks what its evaluator reads fails, naming the dataset and the key."""
import os

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.structures import BoxMode
from PIL import Image

from helpers import TINY_CONFIG, TINY_OPTIONS, load_train_net, temporary_datasets, train_net_args
from mqformer_d2.engine.dataset_checks import EVALUATOR_METADATA, check_dataset_names, check_datasets


@pytest.mark.parametrize("key", ["TRAIN", "TEST"])
def test_a_typo_names_the_key_and_close_registered_names(key):
    cfg = get_cfg()
    cfg.DATASETS[key] = ("coco_2017_train",) if key == "TRAIN" else ("coco_2017_vall",)
    cfg.DATASETS["TEST" if key == "TRAIN" else "TRAIN"] = ()
    if key == "TRAIN":
        check_dataset_names(cfg)  # registered: no error
        cfg.DATASETS.TRAIN = ("coco_2017_trian",)
    with pytest.raises(KeyError, match=f"DATASETS.{key}: dataset 'coco_2017_.*' is not registered.*coco_2017_"):
        check_dataset_names(cfg)


@pytest.fixture
def eval_set():
    """eval_set(**metadata) -> a registered (empty) dataset name with that metadata."""
    with temporary_datasets("test_eval_meta") as register:
        yield lambda **metadata: register(lambda: [], **metadata)


def _test_cfg(name):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (), (name,)
    return cfg


@pytest.mark.parametrize("evaluator_type, metadata, missing", [
    ("sem_seg", dict(text_prompts=["cup"], ignore_label=255), "'stuff_classes'"),
    ("coco_panoptic_seg", dict(text_prompts=["cup"], panoptic_json="p.json",
                               thing_dataset_id_to_contiguous_id={1: 0}), "'panoptic_root'"),
    ("coco", dict(text_prompts=["cup"]), "'json_file' or 'thing_classes'"),
    ("seginw", dict(text_prompts=["cup"], thing_classes=["cup"]), "'json_file'"),
    ("foreground", dict(text_prompts=None), "'text_prompts'"),
])
def test_missing_evaluator_metadata_names_dataset_and_key(eval_set, evaluator_type, metadata, missing):
    task = {"sem_seg": "semantic", "coco_panoptic_seg": "panoptic", "foreground": "foreground"}.get(evaluator_type, "instance")
    name = eval_set(task=task, evaluator_type=evaluator_type, **metadata)
    with pytest.raises(ValueError, match=f"DATASETS.TEST: dataset '{name}': its '{evaluator_type}' evaluator "
                                         f"needs metadata {missing}"):
        check_datasets(_test_cfg(name))


def test_an_unknown_evaluator_type_names_the_dataset(eval_set):
    name = eval_set(task="instance", evaluator_type="cityscapes", text_prompts=["cup"])
    with pytest.raises(ValueError, match=f"dataset '{name}': metadata evaluator_type 'cityscapes' has no evaluator"):
        check_datasets(_test_cfg(name))


def test_complete_metadata_passes(eval_set):
    name = eval_set(task="semantic", evaluator_type="sem_seg", text_prompts=["cup"], stuff_classes=["cup"],
                    ignore_label=255)
    check_datasets(_test_cfg(name))


def test_the_table_covers_every_evaluator_the_project_builds():
    build = pytest.importorskip("mqformer_d2.evaluation.build")
    assert set(EVALUATOR_METADATA) == set(build._BUILDERS)


def test_train_net_checks_test_metadata_before_building_anything(eval_set, tmp_path):
    name = eval_set(task="semantic", evaluator_type="sem_seg", text_prompts=["cup"], ignore_label=255)
    weights = tmp_path / "model_final.pth"  # never read: the check comes first
    weights.write_bytes(b"")
    args = train_net_args("--config-file", TINY_CONFIG, "--eval-only", "DATASETS.TRAIN", "()",
                          "DATASETS.TEST", f"('{name}',)", "OUTPUT_DIR", tmp_path / "out", "MODEL.WEIGHTS", weights)
    with pytest.raises(ValueError, match=f"dataset '{name}'.*'stuff_classes'"):
        load_train_net().main(args)


def test_an_empty_text_prompts_list_is_refused_at_start_up(eval_set):
    name = eval_set(task="semantic", evaluator_type="sem_seg", text_prompts=[], stuff_classes=["cup"],
                    ignore_label=255)
    with pytest.raises(ValueError, match=f"dataset '{name}': its 'sem_seg' evaluator needs metadata "
                                         "'text_prompts', which is not set or empty"):
        check_datasets(_test_cfg(name))


def test_a_missing_test_image_is_found_before_training(tmp_path):
    present, absent = tmp_path / "present.png", tmp_path / "absent.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(present)
    records = [{"file_name": str(path), "height": 8, "width": 8, "image_id": i, "annotations": []}
               for i, path in enumerate([present, absent])]
    cup = {"bbox": [1, 1, 5, 5], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}
    with temporary_datasets("test_missing_image") as register:
        name = register(lambda: [dict(r) for r in records], task="instance", evaluator_type="coco",
                        text_prompts=["cup"], thing_classes=["cup"])
        train = register(lambda: [dict(records[0], annotations=[dict(cup)])], task="detection",
                         evaluator_type="coco", text_prompts=["cup"], thing_classes=["cup"])
        args = train_net_args("--config-file", TINY_CONFIG, *TINY_OPTIONS, "SOLVER.MAX_ITER", 1,
                              "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{name}',)",
                              "OUTPUT_DIR", tmp_path / "out")
        with pytest.raises(FileNotFoundError, match=f"dataset '{name}': 1 file\\(s\\) of its 2 test images "
                                                    f"are missing: {absent}"):
            load_train_net().main(args)
    assert not any(n.endswith(".pth") for n in os.listdir(tmp_path / "out"))  # nothing trained
