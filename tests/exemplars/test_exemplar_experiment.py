"""tools/exemplar_experiment.py end to end on a small benchmark and a tiny (untrained) main-job
run: exemplar sets written and reused, the read-out cache, two 2-iteration exemplar stages, the
evaluations and the table."""
import json
import os

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from helpers import load_script, tiny_config

from mqformer_d2 import MQFormerPredictor
from mqformer_d2.engine import build_config

torch.set_num_threads(1)


def _fake_run(folder):
    """A main-job run folder: the tiny config and its (random) weights."""
    cfg = tiny_config()
    torch.manual_seed(0)
    os.makedirs(folder)
    torch.save({"model": build_model(cfg).state_dict()}, os.path.join(folder, "model_final.pth"))
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    return folder


def test_experiment_end_to_end(exemplar_shapes, tmp_path, capsys):
    experiment = load_script("tools/exemplar_experiment.py").exemplars
    run = _fake_run(str(tmp_path / "run"))
    out = str(tmp_path / "out")
    common = ["--run-dir", run, "--poolings", "mean,attention", "--seeds", "1", "--iterations", "2",
              "--k-values", "1,2", "--episodes", "1"]
    assert experiment.main(common + ["--output-dir", out], root=str(tmp_path)) == 0
    table = capsys.readouterr().out
    assert "exemplars, attention" in table and "text (class names)" in table and "K = 2" in table
    results = json.load(open(os.path.join(out, "results.json")))
    assert [r["pooling"] for r in results["runs"]] == ["mean", "attention"]
    for run_result in results["runs"]:
        for dataset in ("mqformer_shapes_val_instance", "mqformer_shapes_seginw_ColorShapes_val"):
            ap = run_result["exemplar_ap"][dataset]["K=2"]
            assert 0.0 <= ap <= 100.0
    sets = json.load(open(os.path.join(out, "exemplar_sets.json")))
    val_sets = sets["evaluations"]["mqformer_shapes_val_instance"]
    assert val_sets["source"] == "mqformer_shapes_train_instance"
    assert all(len(episodes[0]) == 2 for episodes in val_sets["sets"].values())
    # The stage's folder is a model the predictor loads: config + weights with the trained encoder.
    stage = os.path.join(out, "attention_seed1")
    cfg = build_config(os.path.join(stage, "config.yaml"), ["MODEL.WEIGHTS", os.path.join(stage, "model_final.pth")])
    predictor = MQFormerPredictor(cfg)
    trained = torch.load(os.path.join(stage, "model_final.pth"), weights_only=True)["model"]
    torch.testing.assert_close(predictor.model.exemplar_encoder.pooling.w.weight,
                               trained["exemplar_encoder.pooling.w.weight"])
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    out_instances = predictor(image, exemplars={"part": [(image, (4, 4, 30, 30))]}, task="instance")["instances"]
    assert set(out_instances.pred_classes.tolist()) <= {0}
    cache = torch.load(os.path.join(out, "region_cache.pt"), weights_only=True)
    assert cache["regions"].shape[1:] == (5, 64)  # 4 encoder levels + mask features, C = 64
    # A second run reuses the sets file: same exemplars, so the same untrained-encoder results.
    again = str(tmp_path / "again")
    experiment.main(common + ["--output-dir", again, "--exemplar-sets", os.path.join(out, "exemplar_sets.json"),
                              "--region-cache", os.path.join(out, "region_cache.pt"), "--poolings", "mean"],
                    root=str(tmp_path))
    assert not os.path.exists(os.path.join(again, "region_cache.pt"))
    first = results["runs"][0]["exemplar_ap"]
    second = json.load(open(os.path.join(again, "results.json")))["runs"][0]["exemplar_ap"]
    assert first["mqformer_shapes_val_instance"]["K=1"] == second["mqformer_shapes_val_instance"]["K=1"]


def test_a_cache_of_other_weights_is_refused(exemplar_shapes, tmp_path):
    experiment = load_script("tools/exemplar_experiment.py").exemplars
    first, second = _fake_run(str(tmp_path / "a")), _fake_run(str(tmp_path / "b"))
    common = ["--poolings", "mean", "--seeds", "1", "--iterations", "1", "--k-values", "1", "--episodes", "1"]
    experiment.main(common + ["--run-dir", first, "--output-dir", str(tmp_path / "out")], root=str(tmp_path))
    with pytest.raises(ValueError, match="region_cache.pt: made for weights"):
        experiment.main(common + ["--run-dir", second, "--output-dir", str(tmp_path / "out2"), "--region-cache",
                                  str(tmp_path / "out" / "region_cache.pt")], root=str(tmp_path))
