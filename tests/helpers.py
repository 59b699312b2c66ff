"""Helpers shared by the test modules (the shared pytest fixtures are in conftest.py): the
repository root, tiny configs, model inputs and a training step, criterion / denoising targets, a
tiny copy of the synthetic benchmark, scripts (train_net.py, tools/*.py) loaded as modules, a
deterministic digest evaluator, the fixed one-image batch that the overfitting tests learn, and
datasets registered for one test only."""
import importlib.util
import os
import uuid
from contextlib import contextmanager

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BitMasks, Instances

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.datasets import register_dataset
from mqformer_d2.data.shapes import ShapesBenchmarkConfig, generate_shapes_benchmark, register_shapes_benchmark
from mqformer_d2.engine import build_config
from mqformer_d2.evaluation.adapters import drop_thing_view

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "configs", "mqformer_tiny_cpu.yaml")
SHAPES_SEED = 0
SHAPES_SIZES = dict(train_images=2, val_images=2, detection_train_images=1, detection_val_images=1,
                    foreground_train_images=1, foreground_val_images=1, seginw_train_images=1,
                    seginw_val_images=1)

# The tiny config made tinier: 64-pixel images, one encoder and two decoder layers, few points.
TINY_OPTIONS = [
    "INPUT.IMAGE_SIZE", 64, "INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 64,
    "INPUT.NUM_NEGATIVE_TEXTS", 3,
    "MODEL.MQFORMER.PIXEL_DECODER.NUM_LAYERS", 1, "MODEL.MQFORMER.DECODER.NUM_LAYERS", 2,
    "MODEL.MQFORMER.DECODER.NUM_LEARNABLE_QUERIES", 5, "MODEL.MQFORMER.DECODER.NUM_CONDITIONAL_QUERIES", 10,
    "MODEL.MQFORMER.DENOISING.NUM_QUERIES", 10, "MODEL.MQFORMER.LOSS.NUM_POINTS", 256,
    "DATALOADER.NUM_WORKERS", 0, "SOLVER.IMS_PER_BATCH", 2, "SEED", 0,
]


def tiny_config(*options) -> CfgNode:
    """The frozen tiny config made tinier (TINY_OPTIONS), then `options` ("KEY", value, ...)."""
    return build_config(TINY_CONFIG, [*TINY_OPTIONS, *options])


def config_from_file(path: str = TINY_CONFIG, *options) -> CfgNode:
    """An unfrozen config: detectron2's defaults, MQ-Former's keys, the YAML at `path` (absolute or
    relative to the repository root), then `options`."""
    cfg = add_mqformer_config(get_cfg())
    cfg.merge_from_file(os.path.join(ROOT, path))
    cfg.merge_from_list(list(options))
    return cfg


def tiny_model_config(config: str = "configs/mqformer_tiny_cpu.yaml", *options) -> CfgNode:
    """An unfrozen `config` (default: the tiny config at its own image size and query counts) with
    one encoder layer and 256 mask points, then `options`; for tests that build and run a model."""
    return config_from_file(config, "MODEL.MQFORMER.PIXEL_DECODER.NUM_LAYERS", 1,
                            "MODEL.MQFORMER.LOSS.NUM_POINTS", 256, *options)


def make_model_input(height, width, num_targets, vocabulary=("cat", "dog", "a red car"), seed=0):
    """A mapped training input: a random uint8 (3, height, width) image and `num_targets`
    overlapping rectangle masks labelled with the vocabulary in turn; odd targets have no box."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(num_targets, height, width, dtype=torch.bool)
    for i in range(num_targets):
        masks[i, 8 * i: 8 * i + 24, 4 + 6 * i: 36 + 6 * i] = True
    instances = Instances((height, width))
    instances.gt_masks = BitMasks(masks)
    instances.gt_boxes = BitMasks(masks).get_bounding_boxes()
    instances.gt_text_ids = torch.arange(num_targets) % len(vocabulary)
    instances.gt_has_mask = torch.ones(num_targets, dtype=torch.bool)
    instances.gt_has_box = torch.tensor([i % 2 == 0 for i in range(num_targets)])
    return {"image": torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g),
            "height": height, "width": width, "vocabulary": list(vocabulary), "instances": instances}


def eval_inputs():
    """Two inference inputs without instances; the first asks for outputs at 120 x 160 (as if the
    mapper had resized it to 96 x 128), the second at its own 64 x 96."""
    first = make_model_input(96, 128, 1)
    first.update(height=120, width=160)
    second = make_model_input(64, 96, 1, seed=3)
    for x in (first, second):
        del x["instances"]
    return [first, second]


def train_step(model, batch):
    """One forward/backward in train mode (gradients reset first); checks that every loss is a
    finite scalar and returns the loss dict."""
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model(batch)
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    sum(losses.values()).backward()
    return losses


def make_targets(counts, gen: torch.Generator, mask_size=None):
    """Criterion / denoising targets of images with `counts[b]` objects each: labels in texts 0..3,
    cxcywh boxes inside the image; with `mask_size`, random (mask_size, mask_size) masks and every
    object marked as having a mask and a box."""
    out = []
    for k in counts:
        target = {
            "labels": torch.randint(0, 4, (k,), generator=gen),
            "boxes": torch.cat([torch.rand(k, 2, generator=gen) * 0.5 + 0.25,
                                torch.rand(k, 2, generator=gen) * 0.3 + 0.1], 1),
        }
        if mask_size is not None:
            target["masks"] = torch.rand(k, mask_size, mask_size, generator=gen) > 0.5
            target["has_mask"] = torch.ones(k, dtype=torch.bool)
            target["has_box"] = torch.ones(k, dtype=torch.bool)
        out.append(target)
    return out


@contextmanager
def tiny_shapes_benchmark(root: str):
    """Generate (or reuse) a tiny benchmark under `root` and point the mqformer_shapes_* names at
    it; afterwards point them back to the default root."""
    generate_shapes_benchmark(root, seed=SHAPES_SEED, workers=1, **SHAPES_SIZES)
    register_shapes_benchmark(root, ShapesBenchmarkConfig(seed=SHAPES_SEED, **SHAPES_SIZES))
    try:
        yield root
    finally:
        register_shapes_benchmark()


def load_script(relative_path: str):
    """A script of the repository that is not in a package (e.g. "tools/synthesize_masks.py") as a
    module named after its file."""
    name = os.path.splitext(os.path.basename(relative_path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_train_net():
    """train_net.py (at the repository root) as a module."""
    return load_script("train_net.py")


def train_net_args(*arguments):
    """train_net.py's parsed command line."""
    from mqformer_d2.engine import argument_parser

    return argument_parser().parse_args([str(a) for a in arguments])


class DigestEvaluator(DatasetEvaluator):
    """Sums over every output of every image: any change of weights or inference changes them."""

    def reset(self):
        self.sums = {"images": 0.0, "instance_scores": 0.0, "mask_pixels": 0.0, "sem_seg": 0.0,
                     "panoptic_segments": 0.0, "referring_pixels": 0.0}

    def process(self, inputs, outputs):
        for output in outputs:
            self.sums["images"] += 1
            if "instances" in output:
                self.sums["instance_scores"] += float(output["instances"].scores.sum())
                self.sums["mask_pixels"] += float(output["instances"].pred_masks.sum())
            if "sem_seg" in output:
                self.sums["sem_seg"] += float(output["sem_seg"].double().sum())
            if "panoptic_seg" in output:
                self.sums["panoptic_segments"] += len(output["panoptic_seg"][1])
            if "referring" in output:
                self.sums["referring_pixels"] += float(output["referring"]["masks"].sum())

    def evaluate(self):
        return {"digest": dict(self.sums)}


@classmethod
def digest_evaluator(cls, cfg, dataset_name, output_folder=None):
    """Stands in for `MQFormerTrainer.build_evaluator`: a DigestEvaluator for every dataset."""
    return DigestEvaluator()


def checkpoint_iteration(path: str) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["iteration"]


OVERFIT_VOCABULARY = ["red square", "blue bar"]


def fixed_batch(size=64):
    """One image: a red square and a blue bar on grey, with their masks (2, size, size) bool and
    texts (OVERFIT_VOCABULARY)."""
    image = torch.full((3, size, size), 128, dtype=torch.uint8)
    masks = torch.zeros(2, size, size, dtype=torch.bool)
    masks[0, 8:32, 8:32] = True
    masks[1, 40:56, 10:58] = True
    image[:, masks[0]] = torch.tensor([230, 20, 20], dtype=torch.uint8)[:, None]  # RGB config
    image[:, masks[1]] = torch.tensor([20, 20, 230], dtype=torch.uint8)[:, None]
    instances = Instances((size, size))
    instances.gt_masks = BitMasks(masks)
    instances.gt_boxes = BitMasks(masks).get_bounding_boxes()
    instances.gt_text_ids = torch.tensor([0, 1])
    instances.gt_has_mask = torch.ones(2, dtype=torch.bool)
    instances.gt_has_box = torch.ones(2, dtype=torch.bool)
    return [{"image": image, "height": size, "width": size, "vocabulary": list(OVERFIT_VOCABULARY),
             "instances": instances, "task": "instance"}], masks


def mask_iou(a, b):
    """IoU of two bool masks (0 when both are empty)."""
    return (a & b).sum().item() / max((a | b).sum().item(), 1)


@contextmanager
def temporary_datasets(prefix: str):
    """Yields register(loader, **metadata) -> a new name `<prefix>_<hex>` registered with
    `register_dataset`; every name it gave is unregistered on exit."""
    names = []

    def register(loader, **metadata):
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        register_dataset(name, loader, **metadata)
        names.append(name)
        return name

    try:
        yield register
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


@contextmanager
def registered(names):
    """Remove datasets ``names`` (and their evaluation views) from the catalogs afterwards."""
    try:
        yield names
    finally:
        for name in names:
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
            if name in MetadataCatalog.list():
                MetadataCatalog.remove(name)
            drop_thing_view(name)
