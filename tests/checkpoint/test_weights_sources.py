"""Weights from other sources: timm Swin state dicts, open_clip text towers (TEXT_ENCODER.PRETRAINED),
and tools/convert_weights.py, whose output training and both predictors load by name."""
import pickle

import pytest
import timm
import torch
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from helpers import TINY_CONFIG, TINY_OPTIONS, load_script, tiny_config

from mqformer_d2.checkpoint import MQFormerCheckpointer, WeightsFileError
from mqformer_d2.engine import MQFormerPredictor
from mqformer_d2.modeling.backbone import TimmSwinBackbone
from mqformer_d2.modeling.text_encoder import OpenCLIPTextEncoder, import_open_clip

torch.set_num_threads(2)
open_clip = import_open_clip()  # with MQ-Former's tiny text tower config added
# The ViT-L/14 text layout (width 768, 12 heads, context 77, CLIP's vocabulary) with 2 instead of
# 12 layers: the same tensor names and per-layer shapes as ViT-L-14's text tower, without building
# and writing its 123M parameters (and its 304M-parameter image tower) in a unit test.
VIT_L14_TEXT_2_LAYERS = "test-ViT-L-14-text-2-layers"


def test_timm_swin_state_dict_fills_the_swin_backbone(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).state_dict()
    path = str(tmp_path / "swin_tiny_timm.pth")
    torch.save(source, path)
    target = torch.nn.Module()
    target.backbone = TimmSwinBackbone(model_name="swin_tiny_patch4_window7_224",
                                       out_features=["res2", "res3", "res4", "res5"], drop_path_rate=0.0)
    checkpointer = MQFormerCheckpointer(target)
    checkpointer.load(path)
    report = checkpointer.last_report
    assert report.file_format == "Swin (timm layout)"
    loaded = target.state_dict()
    swin_names = [n for n in loaded if n.startswith("backbone.swin.")]
    assert set(swin_names) <= set(report.sources)  # every tensor of the Swin itself, merging layers included
    for name in swin_names:
        assert torch.equal(loaded[name], source[name[len("backbone.swin."):]]), name
    assert torch.equal(loaded["backbone.output_norms.res5.weight"], source["norm.weight"])
    # A classification checkpoint has no norms for the earlier stages: left as built, and reported.
    assert sorted(report.initialised["backbone"]) == [f"backbone.output_norms.res{i}.{k}"
                                                      for i in (2, 3, 4) for k in ("bias", "weight")]
    assert report.skipped["ImageNet classifier head (no counterpart)"] == ["head.fc.weight", "head.fc.bias"]


def save_open_clip(model_name, path, with_visual_keys=3):
    """A random open_clip model's text tower (and a few image-tower tensors, as in a full release)."""
    torch.manual_seed(1)
    state = open_clip.create_model(model_name).state_dict()
    visual = [n for n in state if n.startswith("visual.")][:with_visual_keys]
    kept = {n: v for n, v in state.items() if not n.startswith("visual.") or n in visual}
    torch.save(kept, path)
    return kept


@pytest.mark.parametrize("model_name", ["ViT-B-32", "l14-layout"])
def test_open_clip_text_tower_loads_from_a_local_file(tmp_path, model_name):
    if model_name == "l14-layout":
        model_name = register_vit_l14_text_layout(tmp_path)
    path = str(tmp_path / "open_clip_model.pth")
    source = save_open_clip(model_name, path)
    encoder = OpenCLIPTextEncoder(model_name=model_name, pretrained=path, freeze=True, output_dim=32)
    tower = encoder.clip.state_dict()
    assert tower, "no text tower"
    for name, value in tower.items():
        assert torch.equal(value, source[name]), name
    assert encoder.random_frozen_tower_warning() is None


def register_vit_l14_text_layout(folder) -> str:
    """VIT_L14_TEXT_2_LAYERS as an open_clip config (open_clip reads configs from json files)."""
    import json
    config_dir = folder / "open_clip_configs"
    config_dir.mkdir(exist_ok=True)
    (config_dir / f"{VIT_L14_TEXT_2_LAYERS}.json").write_text(json.dumps({
        "embed_dim": 768,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 2},
    }))
    open_clip.add_model_config(str(config_dir))
    return VIT_L14_TEXT_2_LAYERS


def test_text_tower_errors_and_the_frozen_random_warning(tmp_path):
    path = str(tmp_path / "tiny.pth")
    save_open_clip("mqformer-tiny-text", path)
    with pytest.raises(WeightsFileError, match="tiny.pth.*not a checkpoint of this text tower"):
        OpenCLIPTextEncoder(model_name=register_vit_l14_text_layout(tmp_path), pretrained=path, freeze=True,
                            output_dim=32)
    with pytest.raises(FileNotFoundError, match="TEXT_ENCODER.PRETRAINED.*missing.pth"):
        OpenCLIPTextEncoder(model_name="mqformer-tiny-text", pretrained=str(tmp_path / "missing.pth"), freeze=True,
                            output_dim=32)
    random_frozen = OpenCLIPTextEncoder(model_name="mqformer-tiny-text", pretrained="", freeze=True, output_dim=32)
    message = random_frozen.random_frozen_tower_warning()
    assert "TEXT_ENCODER.FREEZE" in message and "TEXT_ENCODER.PRETRAINED" in message
    assert OpenCLIPTextEncoder(model_name="mqformer-tiny-text", pretrained="", freeze=False,
                               output_dim=32).random_frozen_tower_warning() is None
    # An MQ-Former checkpoint holding the tower counts as weights.
    random_frozen.load_state_dict(random_frozen.state_dict())
    assert random_frozen.random_frozen_tower_warning() is None


def test_convert_weights_writes_a_checkpoint_that_loads_by_name(tmp_path, capsys):
    tiny = tiny_config()
    torch.manual_seed(2)
    backbone = build_model(tiny).backbone.state_dict()
    source = tmp_path / "R-18.pkl"  # detectron2 model-zoo layout
    with open(source, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in backbone.items()}, "__author__": "test",
                     "matching_heuristics": True}, f)
    destination = tmp_path / "converted" / "mqformer_r18.pth"
    tool = load_script("tools/convert_weights.py")
    argv = ["--config-file", TINY_CONFIG, str(source), str(destination), *map(str, TINY_OPTIONS)]
    report = tool.main(argv)
    printed = capsys.readouterr().out
    assert "backbone" in printed and f"wrote {destination}" in printed and report.share("backbone") == 1.0
    written = torch.load(destination, weights_only=True)["model"]
    assert sorted(written) == sorted(f"backbone.{k}" for k in backbone)
    before = destination.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        tool.main(argv)
    assert destination.read_bytes() == before
    tool.main([*argv[:4], "--overwrite", *argv[4:]])  # the flag after SRC DST is a flag, not an override
    tool.main([*argv, "--overwrite"])
    assert "wrote" in capsys.readouterr().out
    options = ["MODEL.WEIGHTS", str(destination)]
    for predictor in (MQFormerPredictor(tiny_config(*options)), DefaultPredictor(tiny_config(*options))):
        loaded = predictor.model.backbone.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in backbone.items())
