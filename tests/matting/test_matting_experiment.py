"""tools/matting_experiment.py (`make matting`): it stops before any work without a main-job run,
counts wrong objects, and checks the targets on the table's means."""
import numpy as np
import pytest
from helpers import load_script

from mqformer_d2.matting.peer_table import MattingCase

tool = load_script("tools/matting_experiment.py")


def _metrics(value):
    keys = ("SAD", "MSE", "Grad", "Conn", "SAD_whole", "MSE_whole", "Grad_whole", "Conn_whole")
    return dict({k: value for k in keys}, seconds_per_image=0.0)


def test_a_missing_main_job_run_stops_at_once(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_final.pth"):
        tool.main(["--run-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing was claimed or written


def test_wrong_objects_are_masks_below_half_iou():
    truth = np.zeros((4, 4), bool)
    truth[:2] = True
    case = MattingCase({}, None, None, None, truth, "the red circle")
    wrong_place = np.zeros((4, 4), bool)
    wrong_place[3] = True
    assert tool.wrong_objects([truth, wrong_place, np.zeros((4, 4), bool)], [case] * 3) == 2


def test_targets_compare_the_means():
    rows = [{"method": "closed-form matting (pymatting), GT trimap", "runs": [_metrics(2.0)]},
            {"method": "KNN matting (pymatting), GT trimap", "runs": [_metrics(3.0)]},
            {"method": "refinement, GT trimap", "runs": [_metrics(1.0), _metrics(2.5)]},
            {"method": "prompt -> MQ-Former mask as alpha", "runs": [_metrics(4.0)]},
            {"method": "prompt -> MQ-Former mask -> trimap (8 px) -> refinement", "runs": [_metrics(2.0)]}]
    met = tool.targets(rows)
    assert met["refinement beats closed-form and KNN on SAD, MSE, Grad, Conn (GT trimaps)"] is True
    assert all(met[name] for name in met if name.startswith("pipeline"))
    rows[2]["runs"] = [_metrics(2.5)]  # worse than closed-form
    assert tool.targets(rows)["refinement beats closed-form and KNN on SAD, MSE, Grad, Conn (GT trimaps)"] is False
