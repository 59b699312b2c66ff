"""demo/demo.py --exemplar NAME=IMAGE:x0,y0,x1,y1 (repeatable), beside --prompts."""
import cv2
import numpy as np
import pytest
import torch
from helpers import TINY_CONFIG, TINY_OPTIONS, load_script

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo():
    return load_script("demo/demo.py")


def test_demo_draws_exemplar_prompts(demo, tmp_path):
    image = np.random.RandomState(0).randint(0, 256, (60, 80, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    cv2.imwrite(str(tmp_path / "example.png"), image[:40, :50])
    argv = ["--config-file", TINY_CONFIG, "--input", str(tmp_path / "photo.png"), "--output", str(tmp_path / "vis"),
            "--exemplar", f"part 4711={tmp_path / 'example.png'}:2,3,30,35", "--exemplar", "part 4711=:10,10,50,40",
            "--negative-exemplar", "part 4711=:0,0,8,8", "--prompts", "zebra", "--task", "semantic",
            "--opts", *map(str, TINY_OPTIONS), "MODEL.MQFORMER.EXEMPLARS.ENABLED", "True"]
    written = demo.main(argv)
    assert cv2.imread(written[0]).shape[1] == 5 * 80


def test_exemplar_values_are_parsed(demo):
    parsed = demo.parse_exemplars(["a=x.png:1,2,3,4", "a=:0,0,5,5", "b c=C:/dir/y.png:1,1,2,2"])
    assert parsed == {"a": [("x.png", (1, 2, 3, 4)), (None, (0, 0, 5, 5))], "b c": [("C:/dir/y.png", (1, 1, 2, 2))]}


@pytest.mark.parametrize("value", ["a", "a=x.png", "=x.png:1,2,3,4", "a=x.png:1,2,3", "a=x.png:1,2,z,4"])
def test_malformed_exemplars_are_quoted(demo, value):
    with pytest.raises(ValueError, match="NAME=IMAGE:x0,y0,x1,y1"):
        demo.parse_exemplars([value])
