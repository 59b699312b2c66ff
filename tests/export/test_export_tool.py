"""tools/deploy/export_model.py: detectron2's export command line, on the tiny config."""
import os

import cv2
import numpy as np
import pytest
from helpers import TINY_CONFIG, TINY_OPTIONS, load_script

from mqformer_d2.export import ExportFiles

TOOL = load_script("tools/deploy/export_model.py")
OPTIONS = [*map(str, TINY_OPTIONS), "DATASETS.TEST", "('mqformer_shapes_val_panoptic',)"]


def test_exports_the_test_dataset_vocabulary_with_its_stuff(tmp_path):
    sample = tmp_path / "sample.png"
    cv2.imwrite(str(sample), np.full((50, 70, 3), 90, dtype=np.uint8))
    folder = TOOL.main(["--config-file", TINY_CONFIG, "--output", str(tmp_path / "out"),
                        "--sample-image", str(sample), *OPTIONS])
    files = ExportFiles.load(folder)
    from detectron2.data import MetadataCatalog

    from mqformer_d2.modeling.meta_arch.vocabulary import stuff_prompts
    metadata = MetadataCatalog.get("mqformer_shapes_val_panoptic")
    assert files.vocabulary.names == list(metadata.text_prompts)
    stuff = stuff_prompts(metadata)
    assert stuff and [not thing for thing in files.vocabulary.is_thing] == [t in stuff for t in metadata.text_prompts]


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit, match="taken exists"):
        TOOL.main(["--config-file", TINY_CONFIG, "--output", str(tmp_path / "taken"), *OPTIONS])
    with pytest.raises(SystemExit, match="not a readable image"):
        TOOL.main(["--config-file", TINY_CONFIG, "--output", str(tmp_path / "new"),
                   "--sample-image", str(tmp_path / "missing.png"), *OPTIONS])
    with pytest.raises(ValueError, match=r"--stuff names \['moon'\]"):
        TOOL.main(["--config-file", TINY_CONFIG, "--output", str(tmp_path / "new"), "--vocabulary", "cat, dog",
                   "--stuff", "moon", *OPTIONS])
    with pytest.raises(SystemExit, match="empty entry"):
        TOOL.main(["--config-file", TINY_CONFIG, "--output", str(tmp_path / "new"), "--vocabulary", "cat,,dog", *OPTIONS])
    assert sorted(os.listdir(tmp_path)) == ["taken"]
