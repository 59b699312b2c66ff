"""tools/thing_error_analysis.py: mask IoUs and the shares of found / named things, on a tiny model."""

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from engine_fixtures import TINY_CONFIG, TINY_OPTIONS, load_script, tiny_shapes_benchmark

from mqformer_d2.data.shapes import THING_CLASSES
from mqformer_d2.engine import build_config

torch.set_num_threads(1)


def test_mask_ious_at_the_logits_resolution():
    tool = load_script("tools/thing_error_analysis.py")
    logits = torch.full((2, 4, 4), -10.0)
    logits[0, :2, :2] = 10.0  # top-left quarter
    logits[1, :, :2] = 10.0  # left half
    target = torch.zeros(1, 8, 8, dtype=torch.bool)
    target[0, :4, :4] = True  # top-left quarter at twice the resolution
    ious = tool.mask_ious(logits, target)
    assert ious.shape == (2, 1)
    torch.testing.assert_close(ious[:, 0], torch.tensor([1.0, 0.5]))


def test_shares_are_consistent_on_a_tiny_model(tmp_path):
    tool = load_script("tools/thing_error_analysis.py")
    torch.manual_seed(0)
    cfg = build_config(TINY_CONFIG, TINY_OPTIONS)
    model = build_model(cfg).eval()
    with tiny_shapes_benchmark(str(tmp_path)):
        name = "mqformer_shapes_val"
        records = [dict(r, dataset_name=name) for r in DatasetCatalog.get(name)]
        features = {}
        shares = tool.analyse(model, records, batch_size=2, image_format=cfg.INPUT.FORMAT, features=features)
        cosine = tool.text_cosine(model, list(THING_CLASSES))
    things = sum(1 for r in records for a in r["annotations"] if a.get("has_box", True))
    assert shares["things"] == things > 0  # every thing target is matched (more queries than targets)
    assert set(features) == {"queries", *cfg.MODEL.RESNETS.OUT_FEATURES}
    names = sorted(THING_CLASSES[a["category_id"]] for r in records for a in r["annotations"] if a.get("has_box", True))
    for source, pairs in features.items():
        assert sorted(name for _, name in pairs) == names, source
        norms = torch.stack([feature for feature, _ in pairs]).norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms))  # unit vectors
    assert -1.0 <= cosine < 1.0
    assert all(0.0 <= shares[s] <= 100.0 for s in tool.SHARES)
    assert shares["matched_mask_ok"] <= shares["localised"]
    assert shares["matched_both_ok"] <= min(shares["matched_mask_ok"], shares["matched_class_ok"])
    with pytest.raises(SystemExit):
        tool.parse_args([])  # --run-dir is required


def test_linear_probe_separates_separable_features_and_scores_unseen_classes_as_wrong():
    tool = load_script("tools/thing_error_analysis.py")
    torch.manual_seed(0)
    centres = {"star": torch.tensor([1.0, 0.0]), "circle": torch.tensor([0.0, 1.0])}
    fit = [(centres[name] + 0.1 * torch.randn(2), name) for name in ["star", "circle"] * 20]
    evaluate = [(centres["star"], "star"), (centres["circle"], "circle"), (centres["star"], "hexagon")]
    result = tool.linear_probe(fit, evaluate)
    assert result["fit"] == 100.0 and result["things"] == 40
    assert result["eval"] == pytest.approx(200.0 / 3)  # the unseen "hexagon" is wrong


def test_mask_pooled_averages_under_each_mask():
    tool = load_script("tools/thing_error_analysis.py")
    feature_map = torch.zeros(2, 2, 2)
    feature_map[0, 0, 0] = 3.0  # channel 0 lives in the top-left cell only
    feature_map[1] = 1.0  # channel 1 everywhere
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True  # the top-left cell at twice the resolution
    masks[1, 2:, 2:] = True  # the bottom-right cell
    pooled = tool.mask_pooled(feature_map, masks)
    torch.testing.assert_close(pooled, torch.tensor([[0.9487, 0.3162], [0.0, 1.0]]), atol=1e-4, rtol=0)


def test_main_reads_a_run_folder_and_probes_every_feature_source(tmp_path):
    tool = load_script("tools/thing_error_analysis.py")
    torch.manual_seed(0)
    cfg = build_config(TINY_CONFIG, TINY_OPTIONS)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(cfg.dump())
    DetectionCheckpointer(build_model(cfg), save_dir=str(run)).save("model_final")
    with tiny_shapes_benchmark(str(tmp_path / "shapes")):
        result = tool.main(["--run-dir", str(run), "--probe-dataset", "mqformer_shapes_train", "--batch-size", "2"])
    assert result["things"] > 0 and -1.0 <= result["thing_text_cosine"] < 1.0
    assert set(result["linear_probe"]) == {"queries", *cfg.MODEL.RESNETS.OUT_FEATURES}
    for probe in result["linear_probe"].values():
        assert probe["things"] > 0 and 0.0 <= probe["eval"] <= 100.0 and 0.0 <= probe["fit"] <= 100.0
