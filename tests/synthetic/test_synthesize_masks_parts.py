"""The mask synthesis's progress folder (mqformer_d2.synthetic.progress): a failed start does not
block the corrected command."""
import json

import pytest

from mqformer_d2.synthetic.progress import prepare_parts


def test_a_start_that_finished_nothing_does_not_refuse_the_corrected_command(tmp_path):
    output = str(tmp_path / "masks.json")
    prepare_parts(output, False, {"weights": "text_file.pth", "batch_size": 2})  # then the start failed
    prepare_parts(output, False, {"weights": "model_final.pth", "batch_size": 2})
    with open(tmp_path / "masks.json.parts" / "settings.json") as f:
        assert json.load(f)["weights"] == "model_final.pth"


def test_a_run_with_finished_images_still_refuses_other_settings(tmp_path):
    output = str(tmp_path / "masks.json")
    prepare_parts(output, False, {"weights": "a.pth", "batch_size": 2})
    (tmp_path / "masks.json.parts" / "part-000.jsonl").write_text(json.dumps({"index": 0}) + "\n")
    with pytest.raises(RuntimeError, match="weights"):
        prepare_parts(output, False, {"weights": "b.pth", "batch_size": 2})
