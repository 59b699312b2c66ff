"""mqformer_d2.analysis on a tiny model and a tiny benchmark, and tools/thing_error_analysis.py's main()."""
import json
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from fvcore.common.checkpoint import Checkpointer
from helpers import load_script, tiny_config, tiny_shapes_benchmark

from mqformer_d2.analysis import (
    SHARES, accuracy, build_random_init_model, classifier_calibration, collect_target_features, final_layer_matching,
    mask_ious, probe_accuracy, random_init_config, text_side_report,
)
from mqformer_d2.analysis.capture import captured_activations
from mqformer_d2.data import UnifiedDatasetMapper
from mqformer_d2.data.shapes import THING_CLASSES

torch.set_num_threads(1)


def thing_records(name):
    return [dict(r, dataset_name=name) for r in DatasetCatalog.get(name)]


def test_mask_ious_at_the_logits_resolution():
    logits = torch.full((2, 4, 4), -10.0)
    logits[0, :2, :2] = 10.0  # top-left quarter
    logits[1, :, :2] = 10.0  # left half
    target = torch.zeros(1, 8, 8, dtype=torch.bool)
    target[0, :4, :4] = True  # top-left quarter at twice the resolution
    ious = mask_ious(logits, target)
    assert ious.shape == (2, 1)
    torch.testing.assert_close(ious[:, 0], torch.tensor([1.0, 0.5]))


def test_every_stage_is_read_out_per_thing_and_the_shares_are_consistent(tmp_path):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with tiny_shapes_benchmark(str(tmp_path)):
        records = thing_records("mqformer_shapes_val")
        features = collect_target_features(model, records, THING_CLASSES, batch_size=2, image_format=cfg.INPUT.FORMAT)
    names = [THING_CLASSES[a["category_id"]] for r in records for a in r["annotations"] if a.get("has_box", True)]
    assert sorted(features.names) == sorted(names) and names  # every thing matched once
    levels = cfg.MODEL.RESNETS.OUT_FEATURES
    encoder_strides = [8, 16, 32, 64]  # the tiny config: res3-res5 and one extra level
    expected = {"gt_mask", "mask_features", "selected_query", "class_head.query", "decoder.layer1", "decoder.layer2",
                *(f"backbone.{level}" for level in levels), *(f"backbone.{level}.mask_avg" for level in levels),
                *(f"encoder.s{stride}" for stride in encoder_strides)}
    assert set(features.sources) == expected
    channels = {level: model.backbone.output_shape()[level].channels for level in levels}
    for source, rows in features.sources.items():
        assert rows.shape[0] == len(names), source
    for level in levels:
        assert features.sources[f"backbone.{level}"].shape[1] == 16 * channels[level]  # 4x4 grid
    assert features.sources["gt_mask"].shape[1] == 256 and 0.0 <= float(features.sources["gt_mask"].min())
    assert features.sources["encoder.s8"].shape[1] == 16 * cfg.MODEL.MQFORMER.HIDDEN_DIM
    norms = features.sources["class_head.query"].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    outcomes = features.outcomes
    assert all(len(outcomes[s]) == len(names) for s in SHARES)
    assert all(both <= (mask and named) for both, mask, named in
               zip(outcomes["matched_both_ok"], outcomes["matched_mask_ok"], outcomes["matched_class_ok"]))
    assert all(mask <= found for mask, found in zip(outcomes["matched_mask_ok"], outcomes["localised"]))
    assert 100.0 * sum(outcomes["matched_class_ok"]) / len(names) == accuracy(features.predicted["all_texts"], names)
    assert set(features.predicted["thing_names"]) <= set(THING_CLASSES)


def test_hooks_capture_the_queries_that_the_final_predictions_come_from(tmp_path):
    cfg = tiny_config()
    model = build_model(cfg).eval()
    mapper = UnifiedDatasetMapper(True, augmentations=[], image_format=cfg.INPUT.FORMAT, num_negative_texts=1000)
    with tiny_shapes_benchmark(str(tmp_path)):
        batch = [mapper(r) for r in thing_records("mqformer_shapes_val")]
    with captured_activations(model) as captured:
        outputs, targets, _ = final_layer_matching(model, batch)
    assert len(captured.layers) == cfg.MODEL.MQFORMER.DECODER.NUM_LAYERS
    assert captured.selected.content.shape[1] == cfg.MODEL.MQFORMER.DECODER.NUM_CONDITIONAL_QUERIES
    assert set(captured.backbone) == set(cfg.MODEL.RESNETS.OUT_FEATURES)
    texts = model.text_encoder(outputs[0]["texts"])
    logits, masks, _ = model.decoder.heads.forward_prediction_heads(captured.layers[-1], captured.pixel.mask_features,
                                                                   texts)
    for b, output in enumerate(outputs):
        finite = torch.isfinite(output["pred_logits"])
        torch.testing.assert_close(logits[b][finite], output["pred_logits"][finite])
        torch.testing.assert_close(masks[b], output["pred_masks"])
    assert not model.backbone._forward_hooks and not model.decoder.layers[0]._forward_hooks  # hooks removed


def test_random_init_baseline_is_built_without_loading_weights(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("the random-init baseline must not load weights")

    monkeypatch.setattr(Checkpointer, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    cfg = tiny_config().clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = str(tmp_path / "missing.pth")
    cfg.MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED = str(tmp_path / "missing_text.pt")
    cfg.freeze()
    cleared = random_init_config(cfg)
    assert cleared.MODEL.WEIGHTS == "" and cleared.MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED == ""
    first, second = build_random_init_model(cfg), build_random_init_model(cfg)
    assert not first.training
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key  # seeded with cfg.SEED: the same initialisation every time
    torch.manual_seed(cfg.SEED + 1)
    other = build_model(random_init_config(cfg))
    assert not torch.equal(other.backbone.stem.conv1.weight, first.backbone.stem.conv1.weight)


def test_text_side_at_initialisation():
    cfg = tiny_config()
    model = build_random_init_model(cfg)
    calibration = classifier_calibration(model)
    assert calibration["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-4)
    assert calibration["logit_bias"] == pytest.approx(-4.595, abs=1e-3)  # the 0.01 focal prior
    report = text_side_report(model, THING_CLASSES)
    cosine = torch.tensor(report["cosine"])
    assert cosine.shape == (6, 6)
    torch.testing.assert_close(cosine, cosine.T, atol=1e-4, rtol=0)
    torch.testing.assert_close(cosine.diagonal(), torch.ones(6), atol=1e-4, rtol=0)
    assert -1.0 <= report["mean_cosine"] <= report["max_cosine"] < 1.0


def test_gt_mask_probe_runs_on_the_benchmark_targets(tmp_path):
    cfg = tiny_config()
    model = build_model(cfg).eval()
    with tiny_shapes_benchmark(str(tmp_path)):
        fit = collect_target_features(model, thing_records("mqformer_shapes_train"), THING_CLASSES, 2,
                                      cfg.INPUT.FORMAT)
        evaluated = collect_target_features(model, thing_records("mqformer_shapes_val"), THING_CLASSES, 2,
                                            cfg.INPUT.FORMAT)
    result = probe_accuracy(fit.sources["gt_mask"], fit.names, evaluated.sources["gt_mask"], evaluated.names)
    assert result["fit"] == 100.0  # a handful of masks in 256 dims: separable
    assert result["fit_targets"] == len(fit.names) and result["eval_targets"] == len(evaluated.names)
    assert 0.0 <= result["eval"] <= 100.0


def test_main_writes_the_table_and_json_into_a_new_folder_each_time(tmp_path):
    tool = load_script("tools/thing_error_analysis.py")
    cfg = tiny_config()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(cfg.dump())
    torch.manual_seed(cfg.SEED + 7)  # "trained" weights that differ from the seeded initialisation
    DetectionCheckpointer(build_model(cfg), save_dir=str(run)).save("model_final")
    arguments = ["--run-dir", str(run), "--probe-dataset", "mqformer_shapes_train", "--batch-size", "2"]
    with tiny_shapes_benchmark(str(tmp_path / "shapes")):
        result = tool.main(arguments)
        again = tool.main(arguments + ["--no-baseline"])
    folder = os.path.dirname(result["report"]["json"])
    assert os.path.dirname(folder) == str(run / "analysis")
    assert os.path.dirname(again["report"]["json"]) != folder  # earlier results are never overwritten
    with open(result["report"]["json"]) as handle:
        saved = json.load(handle)
    assert saved["things"] == result["things"] > 0 and all(0.0 <= saved[s] <= 100.0 for s in SHARES)
    trained, baseline = saved["probes"]["trained"], saved["probes"]["random_init"]
    assert set(baseline) == set(trained) - {"gt_mask"}  # the GT-mask probe once, model-free
    assert all(0.0 <= p["eval"] <= 100.0 and p["fit_targets"] > 0 for p in trained.values())
    assert saved["text_side"]["trained"]["mean_cosine"] != saved["text_side"]["random_init"]["mean_cosine"]
    assert saved["thing_text_cosine"] == saved["text_side"]["trained"]["mean_cosine"]
    with open(result["report"]["markdown"]) as handle:
        table = handle.read()
    assert "| stage | feature source | dim | trained fit | trained val | random-init fit | random-init val |" in table
    assert table.count("| backbone |") == 2 * len(cfg.MODEL.RESNETS.OUT_FEATURES)
    assert "ground-truth mask cropped to its box, 16x16" in table and "mean pairwise cosine" in table
    assert "random_init" not in again["probes"] and again["probes"]["trained"]
    with pytest.raises(SystemExit):
        tool.parse_args([])  # --run-dir is required
