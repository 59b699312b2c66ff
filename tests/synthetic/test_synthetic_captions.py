"""Synthetic captions (paper 3.4): the captioners, mqformer_d2.synthetic.captions and its command line
tools/synthesize_captions.py on images whose truth is known (CPU, no model)."""
import json
import random
import re

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from helpers import load_script
from PIL import Image

from mqformer_d2.data import UnifiedDatasetMapper, load_tagged_dataset_dicts
from mqformer_d2.data.datasets.common import mask_annotation, register_dataset
from mqformer_d2.synthetic import (
    BuiltinCaptioner,
    CallableCaptioner,
    load_captioner,
    register_synthetic_captions,
    synthesize_captions,
)
from mqformer_d2.synthetic.captioners import dominant_color

HEIGHT, WIDTH = 96, 144
CLASSES = ["square", "circle"]
COLOR_WORDS = {"red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "black", "gray", "white"}
POSITION_WORDS = {"left", "right", "top", "bottom", "centre"}


def scene():
    """A large red square on the left and a small blue circle on the right, on grey."""
    image = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
    square = np.zeros((HEIGHT, WIDTH), bool)
    square[30:70, 8:48] = True
    ys, xs = np.mgrid[:HEIGHT, :WIDTH]
    circle = (xs - 120) ** 2 + (ys - 50) ** 2 <= 8 ** 2
    image[square] = (215, 40, 40)
    image[circle] = (45, 75, 220)
    return image, [mask_annotation(square, 0), mask_annotation(circle, 1)]


@pytest.fixture
def source(tmp_path):
    """A registered instance dataset of two images of the scene (the second box-only, with a text)."""
    image, annotations = scene()
    Image.fromarray(image).save(tmp_path / "scene.png")
    box_only = [{k: v for k, v in ann.items() if k != "segmentation"} for ann in annotations]
    box_only[0]["texts"] = ["my own sentence"]
    records = [
        {"file_name": str(tmp_path / "scene.png"), "height": HEIGHT, "width": WIDTH, "image_id": 1,
         "annotations": annotations},
        {"file_name": str(tmp_path / "scene.png"), "height": HEIGHT, "width": WIDTH, "image_id": 2,
         "annotations": box_only},
    ]
    name = "test_synthetic_captions_source"
    register_dataset(name, lambda: records, task="instance", evaluator_type="coco", text_prompts=CLASSES,
                     thing_classes=CLASSES, thing_dataset_id_to_contiguous_id={1: 0, 2: 1},
                     image_root=str(tmp_path))
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def own_words(caption: str, neighbour: str) -> set:
    """The words a caption says about its own object (not the neighbour's description)."""
    own = re.sub(rf"(left of|right of|above|below) the {neighbour}$", "", caption)
    return set(re.findall(r"[a-z]+", own))


def test_builtin_captions_state_only_true_attributes():
    image, annotations = scene()
    annotations = [dict(a, class_name=CLASSES[a["category_id"]]) for a in annotations]
    square, circle = BuiltinCaptioner(max_captions=5).caption(image, annotations)
    assert 1 <= len(square) <= 5 and 1 <= len(circle) <= 5
    assert "the red square" in square and "the red square left of the blue circle" in square
    assert "the large red square on the left" in square
    assert "the small blue circle on the right" in circle and "the blue circle right of the red square" in circle
    for caption in square:
        words = own_words(caption, "blue circle")
        assert "square" in words and not words & ((COLOR_WORDS - {"red"}) | (POSITION_WORDS - {"left"}))
        assert "small" not in words and "circle" not in words
    for caption in circle:
        words = own_words(caption, "red square")
        assert "circle" in words and not words & ((COLOR_WORDS - {"blue"}) | (POSITION_WORDS - {"right"}))
        assert "large" not in words and "square" not in words


def test_builtin_captioner_names_no_colour_without_a_mask_or_a_clear_majority():
    image, annotations = scene()
    box_only = [dict({k: v for k, v in a.items() if k != "segmentation"}, class_name="shape") for a in annotations]
    for captions in BuiltinCaptioner().caption(image, box_only):
        assert captions and not any(set(c.split()) & COLOR_WORDS for c in captions)
    half = np.array([[215, 40, 40]] * 5 + [[45, 75, 220]] * 5, dtype=np.uint8)
    assert dominant_color(half) is None and dominant_color(half[:5]) == "red"


def test_caption_synthesis_writes_texts_the_mapper_draws_from(source, tmp_path):
    output = tmp_path / "captions.json"
    synthesize_captions(source, str(output), max_captions=3)
    data = json.loads(output.read_text())
    assert [c["id"] for c in data["categories"]] == [1, 2] and len(data["annotations"]) == 4
    first = data["annotations"][0]
    assert first["category_id"] == 1 and "segmentation" in first and 1 <= len(first["texts"]) <= 3
    assert data["annotations"][2]["texts"][0] == "my own sentence"  # the source's texts are kept, first

    name = source + "-syn-c"
    register_synthetic_captions(name, str(output), str(tmp_path), metadata_from=source)
    dicts, _ = load_tagged_dataset_dicts([name])
    assert dicts[0]["annotations"][0]["texts"] == first["texts"]
    mapper = UnifiedDatasetMapper(is_train=True, augmentations=[], image_format="RGB", num_negative_texts=0,
                                  rng=random.Random(0))
    drawn = set()
    for _ in range(20):
        out = mapper(dicts[0])
        square_text = out["vocabulary"][int(out["instances"].gt_text_ids[0])]
        assert square_text in first["texts"]
        drawn.add(square_text)
    assert len(drawn) > 1  # one of the captions is drawn per load
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def crop_describer(crop, box):
    """An 'external model' for the adapter: describes the crop's size and mean red value."""
    size = f"a {crop.shape[1]}x{crop.shape[0]} crop"
    return [size, "", f"red {int(crop[..., 0].mean())}", "a duplicate", "a duplicate"]


def test_external_captioner_adapter_and_tool_option(source, tmp_path):
    image, annotations = scene()
    square = BoxMode.convert(annotations[0]["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    texts = CallableCaptioner(crop_describer, max_captions=5).caption(image, [annotations[0]])[0]
    assert texts == [f"a {int(square[2] - square[0])}x{int(square[3] - square[1])} crop", "red 215", "a duplicate"]
    assert isinstance(load_captioner(f"{__name__}:crop_describer"), CallableCaptioner)
    with pytest.raises(ValueError, match="cannot load"):
        load_captioner("no_such_module_xyz:fn")

    output = tmp_path / "external.json"
    output.write_text("user's file")
    tool = load_script("tools/synthesize_captions.py")
    arguments = ["--dataset", source, "--output", str(output), "--captioner", f"{__name__}:crop_describer"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        tool.run(arguments)
    assert output.read_text() == "user's file"
    data = tool.run(arguments + ["--overwrite", "--max-captions", "1"])
    assert all(len(ann["texts"]) == 1 for ann in data["annotations"][:2])
