"""Vocabulary sources at inference, and the single-query-kind (ablation) variants."""
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model

from helpers import eval_inputs, make_model_input, tiny_model_config, train_step

from mqformer_d2.analysis import match_queries

torch.set_num_threads(2)


def test_vocabulary_from_method_config_and_metadata():
    torch.manual_seed(0)
    name = "mqformer_test_vocabulary_dataset"
    MetadataCatalog.get(name).set(text_prompts=["sky", "tree"], task="semantic")
    cfg = tiny_model_config("configs/mqformer_tiny_cpu.yaml", "DATASETS.TEST", (name,))
    model = build_model(cfg).eval()
    x = eval_inputs()[1]
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
    model = build_model(tiny_model_config(config))
    assert model.decoder.num_queries == 30
    train_step(model, [make_model_input(64, 96, 2)])
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    model.eval()
    with torch.no_grad():
        instances = model(eval_inputs()[:1])[0]["instances"]
    # Queries whose mask is empty score 0 and fall under the (0.0) threshold.
    assert 0 < len(instances) <= 30 and instances.pred_masks.shape[1:] == (120, 160)


def test_stuff_texts_follow_the_thing_id_map_not_class_name_lists():
    """detectron2's standard COCO panoptic metadata lists every class in thing_classes; only the id
    maps say which contiguous ids are things."""
    from detectron2.data import MetadataCatalog

    from mqformer_d2.modeling.meta_arch.vocabulary import stuff_prompts

    coco_like = MetadataCatalog.get("test_stuff_prompts_coco_like")
    coco_like.set(text_prompts=["person", "car", "sky", "grass"], thing_classes=["person", "car", "sky", "grass"],
                  stuff_classes=["person", "car", "sky", "grass"],
                  thing_dataset_id_to_contiguous_id={1: 0, 3: 1}, stuff_dataset_id_to_contiguous_id={9: 2, 11: 3})
    instances_only = MetadataCatalog.get("test_stuff_prompts_instances")
    instances_only.set(text_prompts=["person", "car"], thing_dataset_id_to_contiguous_id={1: 0, 3: 1})
    try:
        assert stuff_prompts(coco_like) == {"sky", "grass"}
        assert stuff_prompts(instances_only) == set()
        assert stuff_prompts(None) == set()
    finally:
        MetadataCatalog.remove("test_stuff_prompts_coco_like")
        MetadataCatalog.remove("test_stuff_prompts_instances")


@pytest.mark.parametrize("config, expected_types", [
    ("configs/ablation/learnable_only.yaml", {0}), ("configs/ablation/conditional_only.yaml", {1}),
    ("configs/mqformer_tiny_cpu.yaml", {0, 1}),
])
def test_match_queries_reports_each_matched_targets_query_type(config, expected_types):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(config))
    model.eval()
    batch = [make_model_input(64, 64, 3), make_model_input(64, 64, 2, seed=1)]  # odd targets have no box
    matches = match_queries(model, batch)
    assert [len(m["query_type"]) for m in matches] == [3, 2]  # every target wins one query
    assert set(torch.cat([m["query_type"] for m in matches]).tolist()) <= {0, 1}
    if expected_types != {0, 1}:
        assert set(torch.cat([m["query_type"] for m in matches]).tolist()) == expected_types
    assert sorted(matches[0]["has_box"].tolist()) == [False, True, True]


def test_stuff_split_and_vocabulary_follow_each_inputs_dataset():
    model = build_model(tiny_model_config())
    model.eval()
    first, second = "test_per_dataset_a", "test_per_dataset_b"
    MetadataCatalog.get(first).set(text_prompts=["road", "dog"], thing_dataset_id_to_contiguous_id={1: 0, 2: 1},
                                   stuff_dataset_id_to_contiguous_id={})
    MetadataCatalog.get(second).set(text_prompts=["road", "dog"], thing_dataset_id_to_contiguous_id={2: 1},
                                    stuff_dataset_id_to_contiguous_id={1: 0})
    model.test_dataset = first
    try:
        assert model._is_thing(["road", "dog"], model._dataset({"dataset_name": second})) == [False, True]
        assert model._is_thing(["road", "dog"], model._dataset({})) == [True, True]
        assert model._vocabulary({"dataset_name": second}, 0) == ["road", "dog"]
    finally:
        MetadataCatalog.remove(first)
        MetadataCatalog.remove(second)


def test_an_empty_batch_vocabulary_trains_and_predicts():
    """E.g. a crop that removed every target of a dataset without class names (Visual Genome)."""
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    batch = [dict(make_model_input(64, 64, 0), vocabulary=[])]
    losses = train_step(model, batch)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        image = {k: v for k, v in make_model_input(64, 64, 0).items() if k != "instances"}
        output = model([dict(image, vocabulary=[], task="referring")])
    assert output[0]["referring"]["masks"].shape == (0, 64, 64)
