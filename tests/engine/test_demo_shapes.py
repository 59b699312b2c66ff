"""`make demo` (tools/demo_shapes.py) on a tiny randomly initialised main-job run: every task drawn
for a validation image and the photo, the drawings that show nothing named in warnings, the
README's pictures written small."""
import logging
import os

import pytest
import torch
from detectron2.modeling import build_model

from helpers import load_script, tiny_config

torch.set_num_threads(2)
TASKS = ("instance", "detection", "semantic", "panoptic", "referring", "foreground", "all")


@pytest.fixture
def random_run(tmp_path, tiny_shapes):
    """A main-job run folder holding the tiny config and a randomly initialised model_final.pth."""
    run = tmp_path / "output" / "shapes" / "run_20260101_000000"
    run.mkdir(parents=True)
    cfg = tiny_config()
    (run / "config.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, run / "model_final.pth")
    return run


def test_newest_run_is_the_latest_with_a_final_checkpoint(tmp_path, random_run):
    tool = load_script("tools/demo_shapes.py")
    (random_run.parent / "run_20990101_000000").mkdir()  # newer, but nothing trained in it
    assert tool.newest_run(str(random_run.parent)) == str(random_run)
    with pytest.raises(FileNotFoundError, match="make train"):
        tool.newest_run(str(tmp_path / "nothing"))


def test_make_demo_draws_every_task_and_warns_about_empty_drawings(random_run, tmp_path, caplog):
    tool = load_script("tools/demo_shapes.py")
    output = tmp_path / "demo"
    # detectron2's setup_logger stops propagation: listen on the tool's loggers themselves.
    for name in ("demo_shapes", "mqformer_d2"):
        logging.getLogger(name).addHandler(caplog.handler)
    with caplog.at_level(logging.WARNING):
        # Threshold 1: no score exceeds it, so the instance-like drawings are certainly empty.
        tool.main(["--run-dir", str(random_run), "--output-dir", str(output), "--images", "1", "--threshold", "1",
                   "--readme-images", str(tmp_path / "readme"), "--cpu"])
    images = sorted(n for n in os.listdir(output) if n.endswith(".png"))
    stems = sorted({n.rsplit("_", 1)[0] for n in images})
    assert len(stems) == 2 and "photo" in stems and stems[1].startswith("val_")
    assert images == sorted(f"{stem}_{task}.png" for stem in stems for task in TASKS)
    for name in ("demo_shapes", "mqformer_d2"):
        logging.getLogger(name).removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("drew nothing (instance): no instance scored above the threshold 1" in w for w in warnings)
    assert any("drawings show nothing" in w and "photo_instance.png" in w for w in warnings)
    readme = sorted(os.listdir(tmp_path / "readme"))
    assert readme == ["demo_photo.png", "demo_shapes_val.png"]
    assert all(os.path.getsize(tmp_path / "readme" / name) < 400_000 for name in readme)
