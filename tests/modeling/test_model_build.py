"""`build_model(cfg)` works on CPU for every shipped config (the big ones are built, not run)."""
import glob
import os

import pytest
import torch
from detectron2.modeling import build_model
from helpers import ROOT, config_from_file

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
EXPECTED_QUERIES = {  # (learnable, conditional)
    "Base-MQFormer.yaml": (100, 300),
    "mqformer_R50.yaml": (100, 300),
    "mqformer_swin_tiny.yaml": (100, 300),
    "mqformer_swin_large.yaml": (100, 300),
    "mqformer_tiny_cpu.yaml": (10, 20),
    "mqformer_tiny_shapes.yaml": (10, 20),
    "learnable_only.yaml": (30, 0),
    "conditional_only.yaml": (0, 30),
    "mixed.yaml": (10, 20),
    "panoptic_R50.yaml": (100, 300),
    "panoptic_swin_large.yaml": (100, 300),
    "mix_swin_large.yaml": (100, 300),
    "mqformer_parts.yaml": (10, 20),
}
torch.set_num_threads(2)


def test_every_config_is_covered():
    assert sorted(os.path.basename(p) for p in CONFIGS) == sorted(EXPECTED_QUERIES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_build_model(path):
    cfg = config_from_file(path)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED = ""  # the ready-to-run configs name weights files tests lack
    if "swin" in os.path.basename(path) or path.endswith(("Base-MQFormer.yaml", "panoptic_R50.yaml")):
        # The ViT-B-32 text tower is built by mqformer_R50.yaml already; save the time here.
        cfg.MODEL.MQFORMER.TEXT_ENCODER.MODEL_NAME = "mqformer-tiny-text"
    model = build_model(cfg)
    learnable, conditional = EXPECTED_QUERIES[os.path.basename(path)]
    assert (model.decoder.num_learnable, model.decoder.num_conditional) == (learnable, conditional)
    assert len(model.decoder.layers) == cfg.MODEL.MQFORMER.DECODER.NUM_LAYERS
    assert len(model.pixel_decoder.encoder.layers) == cfg.MODEL.MQFORMER.PIXEL_DECODER.NUM_LAYERS
    shapes = model.backbone.output_shape()
    assert [shapes[n].stride for n in ("res2", "res3", "res4", "res5")] == [4, 8, 16, 32]
    pixel = cfg.MODEL.MQFORMER.PIXEL_DECODER
    assert model.pixel_decoder.num_levels == len(pixel.IN_FEATURES) + pixel.NUM_EXTRA_LEVELS >= 4
