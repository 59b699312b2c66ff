"""Synthetic masks (paper 3.4): box-prompted decoding, mqformer_d2.synthetic.masks and its command line
tools/synthesize_masks.py (CPU, tiny model)."""
import json
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from helpers import TINY_CONFIG, TINY_OPTIONS, fixed_batch, load_script, mask_iou, tiny_config

from mqformer_d2.data import UnifiedDatasetMapper, load_tagged_dataset_dicts
from mqformer_d2.data.shapes import ShapesBenchmarkConfig, generate_shapes_benchmark, register_shapes_benchmark
from mqformer_d2.engine import build_config
from mqformer_d2.modeling.box_prompting import predict_masks_for_boxes
from mqformer_d2.synthetic import (
    MaskSynthesisJob,
    register_subset,
    register_synthetic_masks,
    synthesize_masks,
    synthetic_mask_iou,
)
from mqformer_d2.synthetic import masks as mask_synthesis
from mqformer_d2.synthetic.progress import parts_dir

torch.set_num_threads(1)
SOURCE = "mqformer_shapes_train_detection"
SIZES = dict(train_images=1, val_images=1, detection_train_images=3, detection_val_images=1,
             foreground_train_images=1, foreground_val_images=1, seginw_train_images=1, seginw_val_images=1)


class Killed(Exception):
    """Stands in for the process being killed."""


def test_box_prompts_give_one_mask_per_box_at_the_original_size():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    inputs = [{"image": torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8), "height": 96, "width": 120},
              {"image": torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)}]
    boxes = [torch.tensor([[10.0, 10, 50, 40], [60, 20, 110, 90], [0, 0, 120, 96]]), torch.zeros(0, 4)]
    outputs = predict_masks_for_boxes(model, inputs, boxes, [["cat", "dog", "cat"], []])
    assert outputs[0]["masks"].shape == (3, 96, 120) and outputs[0]["masks"].dtype == torch.bool
    scores = outputs[0]["scores"]
    assert scores.shape == (3,) and bool(((scores >= 0) & (scores <= 1)).all())
    assert outputs[1]["masks"].shape == (0, 64, 64)
    with pytest.raises(ValueError, match="2 boxes but 1 texts"):
        predict_masks_for_boxes(model, inputs[:1], [boxes[0][:2]], [["cat"]])


def test_box_prompts_segment_the_boxed_object_after_overfitting():
    """After a few steps on one image, each box query (built like a denoising query, without
    noise) returns its object's mask, inside the box's neighbourhood."""
    torch.manual_seed(0)
    cfg = build_config(TINY_CONFIG, ["MODEL.MQFORMER.LOSS.NUM_POINTS", 256, "INPUT.FORMAT", "RGB"])
    model = build_model(cfg)
    batch, masks = fixed_batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(40):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    image = {"image": batch[0]["image"]}
    boxes = batch[0]["instances"].gt_boxes.tensor
    predicted = predict_masks_for_boxes(model, [image], [boxes], [["red square", "blue bar"]])[0]["masks"]
    for k, gt_mask in enumerate(masks):
        assert mask_iou(predicted[k], gt_mask) > 0.5, f"box {k}: IoU {mask_iou(predicted[k], gt_mask):.2f}"
        x0, y0, x1, y1 = boxes[k].long().tolist()
        neighbourhood = torch.zeros_like(gt_mask)
        neighbourhood[max(y0 - 8, 0):y1 + 8, max(x0 - 8, 0):x1 + 8] = True
        assert predicted[k][~neighbourhood].sum() <= 0.1 * predicted[k].sum()


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes"))
    generate_shapes_benchmark(root, seed=0, workers=1, **SIZES)
    register_shapes_benchmark(root, ShapesBenchmarkConfig(seed=0, **SIZES))
    yield root
    register_shapes_benchmark()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(tiny_config())
    folder = str(tmp_path_factory.mktemp("weights"))
    DetectionCheckpointer(model, save_dir=folder).save("tiny")
    return os.path.join(folder, "tiny.pth")


def tool_arguments(output, weights, *extra):
    """tools/synthesize_masks.py's command line on the tiny model, one image per batch, every mask kept."""
    return ["--config-file", TINY_CONFIG, "--dataset", SOURCE, "--output", str(output), "--batch-size", "1",
            "--min-quality", "0.0", *extra, *map(str, TINY_OPTIONS), "MODEL.WEIGHTS", weights]


def job(output, weights, **changes) -> MaskSynthesisJob:
    """The library's job of `tool_arguments` (without extra options), with `changes`."""
    settings = dict(config_file=TINY_CONFIG, dataset=SOURCE, output=str(output), batch_size=1, min_quality=0.0,
                    opts=[*map(str, TINY_OPTIONS), "MODEL.WEIGHTS", weights])
    return MaskSynthesisJob(**dict(settings, **changes))


def test_mask_synthesis_resumes_after_a_kill_and_writes_the_same_file(shapes_root, weights, tmp_path,
                                                                      monkeypatch):
    uninterrupted = tmp_path / "uninterrupted.json"
    synthesize_masks(job(uninterrupted, weights))

    output = tmp_path / "resumed.json"
    original, calls = mask_synthesis.predict_batch, []

    def dies_after_one_batch(*args):
        if calls:
            raise Killed()
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(mask_synthesis, "predict_batch", dies_after_one_batch)
    with pytest.raises(Killed):
        synthesize_masks(job(output, weights))
    assert not output.exists()
    with open(parts_dir(str(output)) + "/part-000.jsonl") as f:
        assert len(f.readlines()) == 1  # the finished batch was written
    with open(parts_dir(str(output)) + "/part-000.jsonl", "a") as f:
        f.write('{"index": 1, "ma')  # killed while writing a line: it is cut and redone

    resumed_batches = []
    monkeypatch.setattr(mask_synthesis, "predict_batch", lambda *args: resumed_batches.append(1) or original(*args))
    synthesize_masks(job(output, weights))
    assert len(resumed_batches) == len(DatasetCatalog.get(SOURCE)) - 1  # the finished batch is not redone
    assert output.read_bytes() == uninterrupted.read_bytes()
    assert not os.path.exists(parts_dir(str(output)))

    data = json.loads(output.read_text())
    assert len(data["annotations"]) == sum(len(r["annotations"]) for r in DatasetCatalog.get(SOURCE))
    for ann in data["annotations"]:
        assert {"bbox", "category_id", "score", "quality"} <= set(ann)
        assert ("segmentation" in ann) == (ann["quality"] > 0)  # min_quality 0 keeps the non-empty masks
        assert 0.0 <= ann["quality"] <= 1.0


def test_mask_tool_never_overwrites_without_the_flag(shapes_root, weights, tmp_path):
    tool = load_script("tools/synthesize_masks.py")
    output = tmp_path / "masks.json"
    output.write_text("user's file")
    with pytest.raises(FileExistsError, match="--overwrite"):
        tool.run(tool_arguments(output, weights))
    assert output.read_text() == "user's file" and not os.path.exists(parts_dir(str(output)))
    tool.run(tool_arguments(output, weights, "--overwrite", "--min-quality", "1.01"))
    data = json.loads(output.read_text())
    assert all("segmentation" not in ann and "quality" in ann for ann in data["annotations"])  # all dropped


def test_mask_synthesis_refuses_to_resume_with_other_settings(shapes_root, weights, tmp_path, monkeypatch):
    output = tmp_path / "masks.json"
    real_predict_batch, calls = mask_synthesis.predict_batch, []

    def killed_after_one_batch(*args):  # one image finished: progress that other settings would lose
        if calls:
            raise Killed()
        calls.append(1)
        return real_predict_batch(*args)

    monkeypatch.setattr(mask_synthesis, "predict_batch", killed_after_one_batch)
    with pytest.raises(Killed):
        synthesize_masks(job(output, weights))
    with pytest.raises(RuntimeError, match="batch_size"):
        synthesize_masks(job(output, weights, batch_size=2))


def box_filling_predictor(model, inputs, boxes, texts):
    """A perfect predictor for box-shaped objects: each mask fills its box."""
    outputs = []
    for x, image_boxes in zip(inputs, boxes):
        masks = torch.zeros(len(image_boxes), x["height"], x["width"], dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, image_boxes.round().long().tolist()):
            mask[y0:y1, x0:x1] = True
        outputs.append({"masks": masks, "scores": torch.ones(len(image_boxes))})
    return outputs


def test_synthetic_masks_register_as_a_segmentation_dataset(shapes_root, weights, tmp_path, monkeypatch):
    monkeypatch.setattr(mask_synthesis, "predict_batch", box_filling_predictor)
    output = tmp_path / "masks.json"
    synthesize_masks(job(output, weights, min_quality=0.9))
    image_root = json.loads(output.read_text())["info"]["mqformer_synthetic"]["image_root"]
    name = SOURCE + "-syn-m"
    register_synthetic_masks(name, str(output), image_root, metadata_from=SOURCE)
    dicts, _ = load_tagged_dataset_dicts([name])
    source = DatasetCatalog.get(SOURCE)
    assert [r["file_name"] for r in dicts] == [r["file_name"] for r in source]
    for record, source_record in zip(dicts, source):
        categories = [a["category_id"] for a in record["annotations"]]
        assert categories == [a["category_id"] for a in source_record["annotations"]]
        assert all("segmentation" in ann and ann["quality"] > 0.9 for ann in record["annotations"])
    mapper = UnifiedDatasetMapper(tiny_config(), is_train=True)
    instances = mapper(dicts[0])["instances"]
    assert len(instances) > 0 and bool(instances.gt_has_mask.all())


def test_hidden_masks_experiment_helpers(shapes_root, weights, tmp_path, monkeypatch):
    """register_subset hides the masks of some images; synthetic_mask_iou scores the synthesized ones."""
    real = "mqformer_shapes_train_instance"
    hidden = "test_hidden_instance"
    register_subset(hidden, real, [r["image_id"] for r in DatasetCatalog.get(real)], drop_masks=True)
    assert all("segmentation" not in a for r in DatasetCatalog.get(hidden) for a in r["annotations"])
    monkeypatch.setattr(mask_synthesis, "predict_batch", box_filling_predictor)
    output = tmp_path / "hidden.json"
    synthesize_masks(job(output, weights, dataset=hidden))
    image_root = json.loads(output.read_text())["info"]["mqformer_synthetic"]["image_root"]
    scores = synthetic_mask_iou(str(output), image_root, real)
    assert scores["kept"] == scores["total"] > 0 and 0.2 < scores["miou"] < 1.0  # boxes are not shapes
    DatasetCatalog.remove(hidden)
    MetadataCatalog.remove(hidden)
