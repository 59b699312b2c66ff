"""The benchmark's matting split: deterministic files, exact alpha, prompts and masks, the
registration, and the user-data folder loader's errors."""
import json
import os

import cv2
import numpy as np
import pytest

from mqformer_d2.data.datasets.matting import load_matting_folders
from mqformer_d2.data.shapes.matting_split import (
    MattingSplitConfig,
    ensure_matting_split,
    load_matting_split,
    random_matting_scene,
)
from mqformer_d2.data.shapes.vocabulary import COLOR_NAMES, THING_CLASSES

CONFIG = MattingSplitConfig(seed=3, image_size=32, train_images=2, val_images=2)


def _files(base):
    return sorted(os.path.relpath(os.path.join(d, f), base) for d, _, fs in os.walk(base) for f in fs)


def test_generation_is_deterministic_and_in_the_matting_layout(tmp_path):
    first = ensure_matting_split(str(tmp_path / "a"), CONFIG)
    second = ensure_matting_split(str(tmp_path / "b"), CONFIG)
    assert _files(first) == _files(second)
    assert "val/image/000001.png" in _files(first) and "val/alpha/000002.png" in _files(first)
    for name in _files(first):
        with open(os.path.join(first, name), "rb") as a, open(os.path.join(second, name), "rb") as b:
            assert a.read() == b.read(), name
    assert ensure_matting_split(str(tmp_path / "a"), CONFIG) == first  # reused, not regenerated


def test_alpha_is_8_bit_single_channel_and_the_trimap_has_every_class(tmp_path):
    base = ensure_matting_split(str(tmp_path), CONFIG)
    for index in (1, 2):
        alpha = cv2.imread(os.path.join(base, "train", "alpha", f"00000{index}.png"), cv2.IMREAD_UNCHANGED)
        trimap = cv2.imread(os.path.join(base, "train", "trimap", f"00000{index}.png"), cv2.IMREAD_UNCHANGED)
        assert alpha.dtype == np.uint8 and alpha.shape == (32, 32)
        assert set(np.unique(trimap)) == {0, 128, 255}
        assert (trimap[(alpha > 0) & (alpha < 255)] == 128).all()  # every soft pixel is unknown


def test_the_composite_is_made_with_the_stored_alpha():
    """Where alpha is 255 the image is the object's colour (plus tint and grain); where 0, not."""
    scene = random_matting_scene(np.random.default_rng(0), 64)
    inside, outside = scene.alpha8 == 255, scene.alpha8 == 0
    assert inside.any() and outside.any()
    colour = scene.image[inside].astype(float).mean(0)
    from mqformer_d2.data.shapes.vocabulary import THING_COLORS
    assert np.abs(colour - THING_COLORS[scene.target.color]).max() < 20
    np.testing.assert_array_equal(scene.target.full_mask, scene.alpha8 >= 128)


def test_records_carry_alpha_trimap_mask_and_prompts(tmp_path):
    records = load_matting_split(str(tmp_path), CONFIG, "val")
    assert len(records) == 2
    record = records[0]
    assert os.path.isfile(record["alpha_file_name"]) and os.path.isfile(record["trimap_file_name"])
    (annotation,) = record["annotations"]
    shape = THING_CLASSES[annotation["category_id"]]
    assert annotation["color"] in COLOR_NAMES
    assert annotation["texts"] == [f"the {annotation['color']} {shape}",
                                   f"{annotation['color']} {shape}", f"{annotation['color']} object"]
    with open(os.path.join(tmp_path, "mqformer_shapes_matting", "annotations", "matting_val.json")) as f:
        assert json.load(f)["annotations"][0]["segmentation"]["size"] == [32, 32]


def test_user_folders_pair_images_with_alphas_and_name_what_is_missing(tmp_path):
    for folder in ("image", "alpha"):
        os.makedirs(tmp_path / folder)
    cv2.imwrite(str(tmp_path / "image" / "a.jpg"), np.zeros((5, 7, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "alpha" / "a.png"), np.zeros((5, 7), np.uint8))
    (record,) = load_matting_folders(str(tmp_path))
    assert (record["height"], record["width"]) == (5, 7) and "trimap_file_name" not in record
    cv2.imwrite(str(tmp_path / "image" / "b.png"), np.zeros((5, 7, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="b.png has no alpha matte"):
        load_matting_folders(str(tmp_path))
    os.makedirs(tmp_path / "trimap")
    cv2.imwrite(str(tmp_path / "alpha" / "b.png"), np.zeros((5, 7), np.uint8))
    with pytest.raises(FileNotFoundError, match="a.jpg has no trimap"):
        load_matting_folders(str(tmp_path))
