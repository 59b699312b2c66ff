"""The unified mapper, its text handling, and the multi-dataset sampler/loader, on tiny fixtures."""
import itertools
import random
import uuid

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.multi_dataset import DatasetRatioSampler, build_unified_train_loader
from mqformer_d2.data.text_utils import build_vocabulary, mirror_sentence
from mqformer_d2.data.unified_mapper import UnifiedDatasetMapper

HEIGHT, WIDTH = 48, 64
PROMPTS = ["cup", "plate", "sky", "grass"]


def rle(mask):
    encoded = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def rectangle_mask(x0, y0, x1, y1):
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture
def datasets(tmp_path):
    """Registers four tiny datasets (instance, referring, detection, semantic) under unique names;
    returns {task: name}. Images are PNG files; masks RLE or polygons, as in COCO json files."""
    image_file = tmp_path / "image.png"
    cv2.imwrite(str(image_file), np.random.RandomState(0).randint(0, 255, (HEIGHT, WIDTH, 3), np.uint8))
    semantic_file = tmp_path / "semantic.png"
    label_map = np.full((HEIGHT, WIDTH), 2, np.uint8)
    label_map[30:, :] = 3
    label_map[:5, :5] = 255
    cv2.imwrite(str(semantic_file), label_map)
    base = {"file_name": str(image_file), "height": HEIGHT, "width": WIDTH, "image_id": 0}
    cup = {"segmentation": rle(rectangle_mask(5, 10, 20, 30)), "category_id": 0, "bbox": [5, 10, 15, 20],
           "bbox_mode": BoxMode.XYWH_ABS}
    plate = {"segmentation": [[30, 5, 60, 5, 60, 25, 30, 25]], "category_id": 1}
    crowd = {"segmentation": rle(rectangle_mask(0, 40, 10, 48)), "category_id": 1, "iscrowd": 1}
    records = {
        "instance": dict(base, annotations=[cup, plate, crowd]),
        "referring": dict(base, annotations=[dict(cup, texts=["the cup left of the plate", "the small cup"])]),
        "detection": dict(base, annotations=[{"bbox": [5, 10, 15, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}]),
        "semantic": dict(base, sem_seg_file_name=str(semantic_file)),
    }
    names = {}
    for task, record in records.items():
        name = f"test_mapper_{task}_{uuid.uuid4().hex[:8]}"
        DatasetCatalog.register(name, lambda record=record: [dict(record)])
        MetadataCatalog.get(name).set(task=task, text_prompts=PROMPTS, ignore_label=255)
        names[task] = name
    yield names
    for name in names.values():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def map_one(name, augmentations=(), is_train=True, seed=0):
    mapper = UnifiedDatasetMapper(is_train, augmentations=list(augmentations), image_format="RGB",
                                  num_negative_texts=2, rng=random.Random(seed))
    return mapper(dict(DatasetCatalog.get(name)[0], dataset_name=name))


def test_mapper_instances_are_consistent(datasets):
    output = map_one(datasets["instance"])
    instances = output["instances"]
    assert output["image"].shape == (3, HEIGHT, WIDTH) and output["image"].dtype == torch.uint8
    assert len(instances) == 2  # the crowd annotation is skipped
    vocabulary = output["vocabulary"]
    assert vocabulary[:2] == ["cup", "plate"] and len(vocabulary) == 4  # 2 positives + 2 negatives
    assert [vocabulary[i] for i in instances.gt_text_ids] == ["cup", "plate"]
    assert instances.gt_has_mask.all() and instances.gt_has_box.all()
    boxes = instances.gt_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= WIDTH).all() and (boxes[:, 3] <= HEIGHT).all()
    torch.testing.assert_close(boxes, instances.gt_masks.get_bounding_boxes().tensor)
    torch.testing.assert_close(boxes[0], torch.tensor([5.0, 10.0, 20.0, 30.0]))


def test_flip_swaps_left_and_right_and_mirrors_masks(datasets):
    plain = map_one(datasets["referring"], seed=3)
    flipped = map_one(datasets["referring"], [T.RandomFlip(prob=1.0)], seed=3)
    assert plain["vocabulary"][0] in ("the cup left of the plate", "the small cup")
    expected = {"the cup left of the plate": "the cup right of the plate", "the small cup": "the small cup"}
    assert flipped["vocabulary"][0] == expected[plain["vocabulary"][0]]
    torch.testing.assert_close(flipped["instances"].gt_masks.tensor, plain["instances"].gt_masks.tensor.flip(-1))


def test_negatives_never_contradict_the_targets(datasets, tmp_path):
    """A referring image gets no class-name negatives (its other objects are unannotated), and a
    captioned object's class name is never a negative of its image."""
    assert len(map_one(datasets["referring"])["vocabulary"]) == 1
    name = f"test_mapper_captions_{uuid.uuid4().hex[:8]}"
    record = DatasetCatalog.get(datasets["instance"])[0]
    captioned = dict(record, annotations=[dict(record["annotations"][0], texts=["a small cup"])])
    DatasetCatalog.register(name, lambda: [captioned])
    MetadataCatalog.get(name).set(task="instance", text_prompts=PROMPTS)
    try:
        for seed in range(10):
            vocabulary = map_one(name, seed=seed)["vocabulary"]
            assert vocabulary[0] == "a small cup" and "cup" not in vocabulary and len(vocabulary) == 3
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_padded_label_maps_are_ignored_whatever_the_ignore_label(datasets, tmp_path):
    """Padding writes 255 into label maps; with ignore_label 254 that must not become class 255."""
    labels = np.full((HEIGHT, WIDTH), 1, np.uint8)
    labels[:, WIDTH // 2:] = 254
    cv2.imwrite(str(tmp_path / "labels.png"), labels)
    name = f"test_mapper_pad_{uuid.uuid4().hex[:8]}"
    record = dict(DatasetCatalog.get(datasets["semantic"])[0], sem_seg_file_name=str(tmp_path / "labels.png"))
    DatasetCatalog.register(name, lambda: [record])
    MetadataCatalog.get(name).set(task="semantic", text_prompts=PROMPTS, ignore_label=254)
    try:
        instances = map_one(name, [T.FixedSizeCrop(crop_size=(100, 120))])["instances"]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert len(instances) == 1 and instances.gt_masks.tensor.sum() == HEIGHT * (WIDTH // 2)


def test_captions_are_drawn_per_load(datasets):
    drawn = {map_one(datasets["referring"], seed=seed)["vocabulary"][0] for seed in range(20)}
    assert drawn == {"the cup left of the plate", "the small cup"}


def test_box_only_targets_are_flagged_and_transformed(datasets):
    output = map_one(datasets["detection"], [T.RandomFlip(prob=1.0)])
    instances = output["instances"]
    assert instances.gt_has_mask.tolist() == [False] and instances.gt_has_box.tolist() == [True]
    assert not instances.gt_masks.tensor.any()
    torch.testing.assert_close(instances.gt_boxes.tensor[0], torch.tensor([WIDTH - 20.0, 10.0, WIDTH - 5.0, 30.0]))


def test_semantic_map_becomes_one_target_per_class(datasets):
    instances = map_one(datasets["semantic"])["instances"]
    vocabulary = map_one(datasets["semantic"])["vocabulary"]
    assert sorted(vocabulary[i] for i in instances.gt_text_ids) == ["grass", "sky"]
    assert not instances.gt_has_box.any()
    assert instances.gt_masks.tensor.sum() == HEIGHT * WIDTH - 25  # the 5x5 ignore corner is in no target


def test_padding_never_enters_masks(datasets):
    """FixedSizeCrop pads segmentations with 255; a padded 0/1 mask must stay 0 there."""
    output = map_one(datasets["instance"], [T.FixedSizeCrop(crop_size=(100, 120))])
    masks = output["instances"].gt_masks.tensor
    assert masks.shape[-2:] == (100, 120)
    assert masks[0].sum() == 15 * 20 and not masks[:, HEIGHT:, :].any() and not masks[:, :, WIDTH:].any()


def test_eval_mapping_uses_the_dataset_vocabulary(datasets):
    instance = map_one(datasets["instance"], is_train=False)
    assert instance["vocabulary"] == PROMPTS and "instances" not in instance
    referring = map_one(datasets["referring"], is_train=False)
    assert referring["vocabulary"] == ["the cup left of the plate", "the small cup"]
    assert referring["sentence_annotation_index"] == [0, 0] and referring["task"] == "referring"


def test_mapper_names_the_file_without_dataset_name(datasets):
    mapper = UnifiedDatasetMapper(True, augmentations=[], image_format="RGB")
    with pytest.raises(KeyError, match="image.png"):
        mapper(DatasetCatalog.get(datasets["instance"])[0])


def test_text_helpers():
    assert mirror_sentence("Left cup, right of the leftmost plate") == "Right cup, left of the rightmost plate"
    assert mirror_sentence("a lefty bright sight") == "a lefty bright sight"
    vocabulary = build_vocabulary(["a", "b", "a"], ["a", "b", "c", "d", "e"], 2, random.Random(0))
    assert vocabulary[:2] == ["a", "b"] and len(vocabulary) == 4 and set(vocabulary[2:]) <= {"c", "d", "e"}


def test_ratio_sampler_hits_its_ratios_and_shards():
    sampler = DatasetRatioSampler([10, 1000], [1.0, 3.0], seed=0)
    draws = torch.tensor(list(itertools.islice(iter(sampler), 20000)))
    assert abs((draws < 10).float().mean().item() - 0.25) < 0.015
    assert draws.min() >= 0 and draws.max() < 1010
    with pytest.raises(ValueError, match="TRAIN_SAMPLING_RATIOS"):
        DatasetRatioSampler([10, 10], [1.0], seed=0)


def test_loader_mixes_all_tasks(datasets):
    cfg = add_mqformer_config(get_cfg())
    cfg.DATASETS.TRAIN = tuple(datasets.values())
    cfg.DATASETS.TRAIN_SAMPLING_RATIOS = [1.0, 1.0, 1.0, 1.0]
    cfg.INPUT.IMAGE_SIZE, cfg.INPUT.MIN_SCALE, cfg.INPUT.MAX_SCALE = 64, 0.5, 1.5
    cfg.INPUT.FORMAT = "RGB"
    cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_WORKERS, cfg.SEED = 4, 0, 0
    loader = build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, is_train=True))
    tasks = set()
    for batch in itertools.islice(iter(loader), 6):
        assert len(batch) == 4
        for item in batch:
            assert item["image"].shape == (3, 64, 64)
            assert item["instances"].gt_masks.tensor.shape[-2:] == (64, 64)
            tasks.add(item["task"])
    assert tasks == {"instance", "referring", "detection", "semantic"}
