"""Mask DINO and Swin checkpoints load into MQ-Former through the explicit key map.

Fake checkpoints carry exactly the names and shapes of real ones (../shared/fixtures/
maskdino_state_dict_keys.json: Mask DINO R50 instance, R50 panoptic, Swin-L panoptic) with random
values; after loading, every MQ-Former tensor taken from the file equals its source tensor."""
import json
import os

import pytest
import torch
from detectron2.modeling import build_backbone
from helpers import ROOT, config_from_file

from mqformer_d2.checkpoint import MQFormerCheckpointer
from mqformer_d2.modeling import MQFormer
from mqformer_d2.modeling.decoder import build_decoder
from mqformer_d2.modeling.pixel_decoder import build_pixel_decoder
from mqformer_d2.modeling.text_encoder import build_text_encoder

torch.set_num_threads(2)
FIXTURE = os.path.join(ROOT, "..", "shared", "fixtures", "maskdino_state_dict_keys.json")
pytestmark = pytest.mark.skipif(not os.path.isfile(FIXTURE), reason=f"fixture {FIXTURE} is absent "
                                "(CI clones the repository with ../shared beside it)")

# The MQ-Former config matching each Mask DINO model (same encoder levels and FFN width).
MATCHING_OPTIONS = {
    "maskdino_R50_instance": ("configs/mqformer_R50.yaml", ["MODEL.MQFORMER.PIXEL_DECODER.NUM_EXTRA_LEVELS", 0,
                                                              "MODEL.MQFORMER.PIXEL_DECODER.DIM_FEEDFORWARD", 1024]),
    "maskdino_R50_panoptic": ("configs/mqformer_R50.yaml", []),
    "maskdino_SwinL_panoptic": ("configs/mqformer_swin_large.yaml", []),  # res2..res5 + 1, as Mask DINO's
}
# Tensors per component: (loaded, total) for every fixture, with the matching config.
EXPECTED_COUNTS = {
    "maskdino_R50_instance": {"backbone": (265, 265), "pixel decoder": (117, 117), "decoder": (206, 316),
                              "heads": (14, 18), "text encoder": (0, 32)},
    "maskdino_R50_panoptic": {"backbone": (265, 265), "pixel decoder": (121, 121), "decoder": (206, 316),
                              "heads": (14, 18), "text encoder": (0, 32)},
    "maskdino_SwinL_panoptic": {"backbone": (333, 333), "pixel decoder": (125, 125), "decoder": (206, 316),
                                "heads": (14, 18), "text encoder": (0, 32)},
}


def fixture_keys(model_name):
    with open(FIXTURE) as f:
        return json.load(f)[model_name]["keys"]


def fake_state(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def build(config_file, options):
    """The MQ-Former of a config, fast: its parts are built on the meta device and then given
    uninitialised memory (a load test needs names and shapes, and compares only loaded values)."""
    # The tiny text tower: Mask DINO has none, and it keeps the test fast.
    cfg = config_from_file(config_file, "MODEL.DEVICE", "cpu", "MODEL.MQFORMER.TEXT_ENCODER.MODEL_NAME",
                           "mqformer-tiny-text", *options)
    with torch.device("meta"):
        backbone = build_backbone(cfg)
        pixel_decoder = build_pixel_decoder(cfg, backbone.output_shape())
        decoder = build_decoder(cfg)
    model = MQFormer(backbone=backbone, pixel_decoder=pixel_decoder, decoder=decoder, text_encoder=build_text_encoder(cfg),
                     criterion=None, pixel_mean=cfg.MODEL.PIXEL_MEAN, pixel_std=cfg.MODEL.PIXEL_STD,
                     size_divisibility=64, denoising=None)
    return model.to_empty(device="cpu")


def reordered(tensor, name, order, num_heads=8):
    """The file's tensor with its level axis in the model's order (written out here, independently
    of the loader): rows of level_embed; (heads, levels, ...) groups of sampling offsets and
    attention weights."""
    if "level_embed" in name:
        return tensor[order]
    if name.split(".")[-2] in ("sampling_offsets", "attention_weights"):
        grouped = tensor.reshape(num_heads, len(order), -1, *tensor.shape[1:])
        return grouped[:, order].reshape(tensor.shape)
    return tensor


def assert_loaded_equal_sources(model, report, state, order):
    loaded = model.state_dict()
    assert report.sources, "nothing was loaded"
    for model_name, file_name in report.sources.items():
        expected = reordered(state[file_name], file_name, order)
        assert torch.equal(loaded[model_name], expected), f"{model_name} != {file_name}"


# Hand-checked pairs of the key map (Mask DINO name -> MQ-Former name), one per kind of tensor.
SPOT_CHECKS = {
    "sem_seg_head.pixel_decoder.transformer.encoder.layers.5.linear2.weight": "pixel_decoder.encoder.layers.5.ffn.net.3.weight",
    "sem_seg_head.pixel_decoder.transformer.encoder.layers.0.norm2.bias": "pixel_decoder.encoder.layers.0.ffn.norm.bias",
    "sem_seg_head.pixel_decoder.adapter_1.norm.weight": "pixel_decoder.mask_lateral.1.weight",
    "sem_seg_head.pixel_decoder.layer_1.weight": "pixel_decoder.mask_output.0.weight",
    "sem_seg_head.predictor.decoder.layers.8.norm2.weight": "decoder.layers.8.self_attention.norm.weight",
    "sem_seg_head.predictor.decoder.layers.8.norm1.weight": "decoder.layers.8.cross_norm.weight",
    "sem_seg_head.predictor.decoder.layers.3.self_attn.in_proj_weight": "decoder.layers.3.self_attention.attention.in_proj_weight",
    "sem_seg_head.predictor.decoder.layers.3.linear1.bias": "decoder.layers.3.ffn.net.0.bias",
    "sem_seg_head.predictor.decoder.ref_point_head.layers.1.weight": "decoder.anchor_to_position.layers.1.weight",
    "sem_seg_head.predictor.enc_output.weight": "decoder.selector.token_projection.weight",
    "sem_seg_head.predictor.enc_output_norm.bias": "decoder.selector.token_norm.bias",
    "sem_seg_head.predictor.decoder_norm.weight": "decoder.heads.norm.weight",
    "sem_seg_head.predictor.mask_embed.layers.2.weight": "decoder.heads.mask_embed.layers.2.weight",
    "sem_seg_head.predictor._bbox_embed.layers.2.bias": "decoder.heads.box_delta.layers.2.bias",
}


def check_fixture(model_name, model, state, order):
    report = MQFormerCheckpointer(model).load_checkpoint({"model": dict(state)}, f"fake {model_name}")
    assert report.file_format == "Mask DINO"
    assert {c: report.counts(c) for c in EXPECTED_COUNTS[model_name]} == EXPECTED_COUNTS[model_name]
    assert_loaded_equal_sources(model, report, state, order)
    loaded = model.state_dict()
    for file_name, model_name_ in SPOT_CHECKS.items():
        assert torch.equal(loaded[model_name_], state[file_name]), model_name_
    # Not loaded, and said so: the closed-set heads and Mask DINO's second decoder norm.
    skipped = {name for names in report.skipped.values() for name in names}
    assert {"sem_seg_head.predictor.class_embed.weight", "sem_seg_head.predictor.label_enc.weight",
            "sem_seg_head.predictor.decoder.norm.weight"} <= skipped
    assert not any(name.startswith("decoder.layers.0.learnable_to_conditional") for name in report.sources)
    return report


@pytest.fixture(scope="module")
def r50_model():
    """configs/mqformer_R50.yaml, which matches Mask DINO's R50 panoptic model."""
    return build(*MATCHING_OPTIONS["maskdino_R50_panoptic"])


def test_maskdino_r50_panoptic_loads_everything_with_a_counterpart(r50_model):
    shapes = fixture_keys("maskdino_R50_panoptic")
    model = r50_model
    state = fake_state(shapes)
    check_fixture("maskdino_R50_panoptic", model, state, order=[0, 1, 2, 3])  # "low2high": finest first
    # Its input_proj.0 is the stride-8 (512-channel) level, as is the model's first projection.
    assert torch.equal(model.pixel_decoder.input_projections[0][0].weight,
                       state["sem_seg_head.pixel_decoder.input_proj.0.0.weight"])


def test_maskdino_r50_instance_reorders_its_coarsest_first_levels():
    model = build(*MATCHING_OPTIONS["maskdino_R50_instance"])
    state = fake_state(fixture_keys("maskdino_R50_instance"), seed=1)
    # Mask DINO's instance model orders its levels res5, res4, res3 ("high2low"); the model res3, res4, res5.
    check_fixture("maskdino_R50_instance", model, state, order=[2, 1, 0])
    assert torch.equal(model.pixel_decoder.input_projections[0][0].weight,
                       state["sem_seg_head.pixel_decoder.input_proj.2.0.weight"])  # 512 channels: res3
    assert torch.equal(model.pixel_decoder.level_embed[0], state["sem_seg_head.pixel_decoder.transformer.level_embed"][2])


def test_maskdino_with_other_levels_skips_level_tensors_and_says_which_keys_to_change(r50_model):
    # The R50 instance checkpoint (3 levels, FFN 1024) into the default R50 config (4 levels, FFN 2048).
    model = r50_model
    state = fake_state(fixture_keys("maskdino_R50_instance"), seed=2)
    report = MQFormerCheckpointer(model).load_checkpoint({"model": state}, "fake instance")
    assert report.share("backbone") == 1.0 and report.counts("pixel decoder")[0] > 0
    level_reasons = [r for r in report.skipped if "NUM_EXTRA_LEVELS" in r]
    assert len(level_reasons) == 1 and len(report.skipped[level_reasons[0]]) == 1 + 2 * 2 * 6 + 2 * 2 * 9
    assert any("ffn.net.0.weight (2048, 256)" in line for line in report.skipped["with another shape than the model's"])
    assert_loaded_equal_sources(model, report, state, order=[0, 1, 2])


@pytest.fixture(scope="module")
def swin_large_model():
    """Built once (the Swin-L backbone is the slow part) for the two Swin-L files below."""
    return build(*MATCHING_OPTIONS["maskdino_SwinL_panoptic"])


def test_maskdino_swin_large_panoptic_loads_every_backbone_tensor(swin_large_model):
    state = fake_state(fixture_keys("maskdino_SwinL_panoptic"), seed=3)
    report = check_fixture("maskdino_SwinL_panoptic", swin_large_model, state, order=[0, 1, 2, 3, 4])
    assert torch.equal(swin_large_model.backbone.swin.layers[1].downsample.reduction.weight,
                       state["backbone.layers.0.downsample.reduction.weight"])  # merging: end of stage 0 -> start of 1
    assert torch.equal(swin_large_model.backbone.output_norms["res4"].weight, state["backbone.norm2.weight"])
    assert len(report.skipped["buffers timm recomputes from the window size"]) == 24


def test_bare_microsoft_swin_large_fills_the_backbone(swin_large_model):
    # The Swin-L names of the fixture without "backbone." are those of Microsoft's checkpoints.
    shapes = {k[len("backbone."):]: s for k, s in fixture_keys("maskdino_SwinL_panoptic").items()
              if k.startswith("backbone.")}
    state = fake_state(shapes, seed=4)
    report = MQFormerCheckpointer(swin_large_model).load_checkpoint({"model": dict(state)}, "fake swin-L")
    assert report.file_format == "Swin (Microsoft layout)"
    assert report.counts("backbone") == (333, 333)
    loaded = swin_large_model.state_dict()
    for model_name, file_name in report.sources.items():
        assert torch.equal(loaded[model_name], state[file_name])
    assert torch.equal(loaded["backbone.swin.layers.3.downsample.norm.weight"], state["layers.2.downsample.norm.weight"])
