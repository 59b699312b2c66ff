"""Weights files never run code, and every bad file is an error naming it (issue 13, item 1;
issue 12, item 4): crafted pickles, text and empty files, missing files, weights of another model."""
import logging
import pickle

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model, build_resnet_backbone
from helpers import tiny_config

from mqformer_d2.checkpoint import MQFormerCheckpointer, WeightsFileError, WeightsMismatchError, read_weights_file
from mqformer_d2.data.datasets.refcoco import load_refs
from mqformer_d2.engine import MQFormerPredictor
from mqformer_d2.safe_pickle import UnsafePickleError, loads_pickle_safely

torch.set_num_threads(2)


class WritesMarker:
    """Unpickling this calls open(marker, "w"): the file appears if the loader runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted(path, marker, wrap):
    with open(path, "wb") as f:
        pickle.dump(wrap(WritesMarker(str(marker))), f, protocol=2)
    return str(path)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(tiny_config())


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_a_crafted_pickle_runs_nothing_and_names_the_file(tmp_path, tiny_model, suffix):
    marker = tmp_path / "marker"
    path = crafted(tmp_path / f"evil{suffix}", marker, lambda obj: {"model": {"w": obj}, "__author__": "x"})
    with pytest.raises(WeightsFileError, match=str(path)):
        MQFormerCheckpointer(tiny_model).load(path)
    assert not marker.exists()


def test_the_predictor_and_the_trainer_use_the_safe_loader(tmp_path):
    marker = tmp_path / "marker"
    path = crafted(tmp_path / "evil.pkl", marker, lambda obj: {"model": obj})
    with pytest.raises(WeightsFileError, match="evil.pkl"):
        MQFormerPredictor(tiny_config("MODEL.WEIGHTS", path))
    from mqformer_d2.engine.trainer import MQFormerTrainer
    with pytest.raises(WeightsFileError, match="evil.pkl"):
        MQFormerTrainer.load_weights_for_evaluation(tiny_config("MODEL.WEIGHTS", path), build_model(tiny_config()))
    assert not marker.exists()


def test_safe_unpickler_rebuilds_plain_data_and_numpy_arrays():
    weights = {"model": {"stem.conv1.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
               "__author__": "torchvision", "matching_heuristics": True, "scale": np.float32(2.0)}
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        loaded = loads_pickle_safely(pickle.dumps(weights, protocol=protocol), encoding="latin1")
        np.testing.assert_array_equal(loaded["model"]["stem.conv1.weight"], weights["model"]["stem.conv1.weight"])
        assert loaded["__author__"] == "torchvision" and loaded["scale"] == 2.0
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        loads_pickle_safely(b"cos\nsystem\n(S'true'\ntR.")


def resnet18_source_and_target():
    """A detectron2 R-18 backbone (the weights' source) and a model holding another as `.backbone`."""
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    source = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    target = torch.nn.Module()
    target.backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    return source, target


def test_detectron2_pkl_backbone_weights_load(tmp_path):
    """A detectron2 model-zoo style .pkl (R-18 here: names as in R-50.pkl) fills the backbone."""
    source, target = resnet18_source_and_target()
    path = tmp_path / "R-18.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in source.state_dict().items()},
                     "__author__": "torchvision", "matching_heuristics": True}, f)
    checkpointer = MQFormerCheckpointer(target)
    checkpointer.load(str(path))
    assert checkpointer.last_report.file_format == "detectron2 backbone"
    assert checkpointer.last_report.share("backbone") == 1.0
    for name, value in source.state_dict().items():
        assert torch.equal(target.backbone.state_dict()[name], value), name


# content -> (error for a .pth, error for a .pkl)
UNUSABLE = {
    b"": ("is empty", "is empty"),
    b"hello, these are not weights\n": ("not a PyTorch checkpoint", "not a readable pickle"),
    pickle.dumps([], protocol=2): ("not a readable PyTorch checkpoint", "holds a list"),
}


@pytest.mark.parametrize("content", list(UNUSABLE), ids=["empty", "text", "list"])
def test_unusable_files_are_errors_naming_the_file(tmp_path, tiny_model, content):
    for suffix, message in zip((".pth", ".pkl"), UNUSABLE[content]):
        path = tmp_path / f"weights{suffix}"
        path.write_bytes(content)
        with pytest.raises(WeightsFileError, match=message) as error:
            MQFormerCheckpointer(tiny_model).load(str(path))
        assert str(path) in str(error.value)


def test_a_missing_file_says_so(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="no_such.pth.*MODEL.WEIGHTS"):
        MQFormerCheckpointer(tiny_model).load(str(tmp_path / "no_such.pth"))
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        read_weights_file(str(tmp_path / "no_such.pth"))


def test_weights_of_another_model_are_errors(tmp_path, tiny_model):
    # An MQ-Former of another width: the backbone fits, everything else does not.
    other = build_model(tiny_config("MODEL.MQFORMER.HIDDEN_DIM", 32))
    path = str(tmp_path / "other.pth")
    torch.save({"model": other.state_dict()}, path)
    with pytest.raises(WeightsMismatchError, match="other.pth.*another configuration"):
        MQFormerCheckpointer(tiny_model).load(path)
    # A backbone of another kind (a Swin) for a ResNet model.
    swin = {"patch_embed.proj.weight": torch.zeros(96, 3, 4, 4), "layers.0.blocks.0.attn.qkv.weight": torch.zeros(288, 96)}
    torch.save(swin, str(tmp_path / "swin.pth"))
    with pytest.raises(WeightsMismatchError, match=r"swin.pth.*fills only 0 of the model's \d+ backbone tensors"):
        MQFormerCheckpointer(tiny_model).load(str(tmp_path / "swin.pth"))


def test_refcoco_refs_are_read_without_running_code(tmp_path):
    refs = [{"ref_id": 1, "sentences": [{"sent": "caf\xe9 table", "sent_id": 3}], "split": "val"}]
    good = tmp_path / "refs(unc).p"
    good.write_bytes(pickle.dumps(refs, protocol=2))
    assert load_refs(str(good)) == refs
    marker = tmp_path / "marker"
    evil = crafted(tmp_path / "evil.p", marker, lambda obj: [obj])
    with pytest.raises(ValueError, match="evil.p"):
        load_refs(evil)
    assert not marker.exists()


def test_bare_backbone_state_dict_loads_by_name_suffix(tmp_path):
    """A .pth of a bare detectron2 backbone's state dict fills `model.backbone` (the model's other
    parts keep their weights)."""
    source, target = resnet18_source_and_target()
    target.head = torch.nn.Linear(2, 2)
    path = str(tmp_path / "r18.pth")
    torch.save(source.state_dict(), path)
    MQFormerCheckpointer(target).load(path)
    torch.testing.assert_close(target.backbone.stem.conv1.weight, source.stem.conv1.weight)


@pytest.mark.parametrize("url", ["https://example.com/weights/model_final.pth",
                                 "detectron2://ImageNetPretrained/MSRA/R-50.pkl"])
def test_a_url_is_refused_without_downloading(tiny_model, monkeypatch, url):
    from detectron2.utils.file_io import PathManager

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(PathManager, "get_local_path", no_download)
    monkeypatch.setattr(PathManager, "open", no_download)
    with pytest.raises(ValueError, match=f"MODEL.WEIGHTS {url} is a URL: .*Download the file first"):
        MQFormerCheckpointer(tiny_model).load(url)


def test_a_checkpoint_of_nans_loads_with_a_warning_naming_the_file(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("mqformer_d2"), "propagate", True)
    model = build_model(tiny_config())
    state = model.state_dict()
    state["decoder.heads.classifier.log_scale"] = torch.tensor(float("nan"))
    state["backbone.stem.conv1.weight"] = state["backbone.stem.conv1.weight"].clone()
    state["backbone.stem.conv1.weight"][0, 0, 0, 0] = float("inf")
    path = str(tmp_path / "diverged.pth")
    torch.save({"model": state}, path)
    MQFormerCheckpointer(build_model(tiny_config())).load(path)
    (warning,) = [r.getMessage() for r in caplog.records if "NaN" in r.getMessage()]
    assert warning.startswith(f"weights file {path}: 2 of the ")
    assert "backbone.stem.conv1.weight" in warning and "decoder.heads.classifier.log_scale" in warning


def test_the_old_checkpointer_path_warns_and_gives_the_same_class(monkeypatch):
    import mqformer_d2.modeling as modeling

    monkeypatch.delitem(vars(modeling), "MQFormerCheckpointer", raising=False)  # as on first use
    with pytest.warns(DeprecationWarning, match="moved to mqformer_d2.checkpoint.MQFormerCheckpointer"):
        from mqformer_d2.modeling import MQFormerCheckpointer as old
    assert old is MQFormerCheckpointer
