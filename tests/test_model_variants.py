"""Vocabulary sources at inference, and the single-query-kind (ablation) variants."""
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model

from test_model_end_to_end import _eval_inputs, _train_step, make_input, tiny_cfg

torch.set_num_threads(2)


def test_vocabulary_from_method_config_and_metadata():
    torch.manual_seed(0)
    name = "mqformer_test_vocabulary_dataset"
    MetadataCatalog.get(name).set(text_prompts=["sky", "tree"], task="semantic")
    cfg = tiny_cfg("configs/mqformer_tiny_cpu.yaml", "DATASETS.TEST", (name,))
    model = build_model(cfg).eval()
    x = _eval_inputs()[1]
    del x["vocabulary"]
    with torch.no_grad():
        assert model([dict(x, task="semantic")])[0]["sem_seg"].shape[0] == 2  # metadata
        model.set_vocabulary(["a", "b", "c", "d"])
        assert model([dict(x, task="semantic")])[0]["sem_seg"].shape[0] == 4  # set_vocabulary
        model.set_vocabulary(None)
        cfg.MODEL.MQFORMER.TEST.VOCABULARY = ["x"]
        assert build_model(cfg).eval()([dict(x, task="semantic")])[0]["sem_seg"].shape[0] == 1  # config
    cfg.DATASETS.TEST = ()
    cfg.MODEL.MQFORMER.TEST.VOCABULARY = []
    with pytest.raises(ValueError, match="set_vocabulary"):
        build_model(cfg).eval()([dict(x)])


@pytest.mark.parametrize("config", ["configs/ablation/learnable_only.yaml", "configs/ablation/conditional_only.yaml"])
def test_single_query_kind_trains_and_predicts(config):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(config))
    assert model.decoder.num_queries == 30
    _train_step(model, [make_input(64, 96, 2)])
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    model.eval()
    with torch.no_grad():
        instances = model(_eval_inputs()[:1])[0]["instances"]
    # Queries whose mask is empty score 0 and fall under the (0.0) threshold.
    assert 0 < len(instances) <= 30 and instances.pred_masks.shape[1:] == (120, 160)
