"""tools/synthesize_masks.py's progress folder: a failed start does not block the corrected command."""
import argparse
import json

import pytest

from helpers import load_script


@pytest.fixture(scope="module")
def tool():
    return load_script("tools/synthesize_masks.py")


def test_a_start_that_finished_nothing_does_not_refuse_the_corrected_command(tool, tmp_path):
    args = argparse.Namespace(output=str(tmp_path / "masks.json"), overwrite=False)
    tool.prepare_parts(args, {"weights": "text_file.pth", "batch_size": 2})  # then the start failed
    tool.prepare_parts(args, {"weights": "model_final.pth", "batch_size": 2})
    with open(tmp_path / "masks.json.parts" / "settings.json") as f:
        assert json.load(f)["weights"] == "model_final.pth"


def test_a_run_with_finished_images_still_refuses_other_settings(tool, tmp_path):
    args = argparse.Namespace(output=str(tmp_path / "masks.json"), overwrite=False)
    tool.prepare_parts(args, {"weights": "a.pth", "batch_size": 2})
    (tmp_path / "masks.json.parts" / "part-000.jsonl").write_text(json.dumps({"index": 0}) + "\n")
    with pytest.raises(RuntimeError, match="weights"):
        tool.prepare_parts(args, {"weights": "b.pth", "batch_size": 2})
