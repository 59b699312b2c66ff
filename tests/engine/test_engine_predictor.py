"""DefaultPredictor, MQFormerPredictor (every task, any prompt) and demo/demo.py on an image."""
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from helpers import TINY_CONFIG, TINY_OPTIONS, load_script, tiny_config

from mqformer_d2 import MQFormerPredictor

torch.set_num_threads(2)
HEIGHT, WIDTH = 60, 80
TEST_DATASET = "mqformer_shapes_val_instance"  # registered on import; only its metadata is read
PROMPTS = ["zebra", "a purple teapot on the left"]


def config(*options):
    return tiny_config("DATASETS.TEST", f"('{TEST_DATASET}',)", *options)


@pytest.fixture(scope="module")
def image():
    return np.random.RandomState(0).randint(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return MQFormerPredictor(config())


def test_default_predictor_takes_the_vocabulary_from_the_metadata(image):
    outputs = DefaultPredictor(config("MODEL.MQFORMER.TEST.TASK", "semantic"))(image)
    prompts = MetadataCatalog.get(TEST_DATASET).text_prompts
    assert outputs["sem_seg"].shape == (len(prompts), HEIGHT, WIDTH)


def test_default_predictor_takes_the_vocabulary_from_the_config(image):
    cfg = config("MODEL.MQFORMER.TEST.TASK", "instance", "MODEL.MQFORMER.TEST.VOCABULARY", "['cat', 'dog']")
    instances = DefaultPredictor(cfg)(image)["instances"]
    assert instances.image_size == (HEIGHT, WIDTH) and len(instances) > 0
    assert int(instances.pred_classes.max()) < 2


def test_mqformer_predictor_every_task_with_new_prompts(predictor, image):
    instances = predictor(image, prompts=PROMPTS, task="instance")["instances"]
    assert instances.pred_masks.shape[1:] == (HEIGHT, WIDTH) and len(instances) > 0
    assert set(instances.pred_classes.tolist()) <= {0, 1}
    assert predictor(image, prompts=PROMPTS, task="semantic")["sem_seg"].shape == (2, HEIGHT, WIDTH)
    segment_ids, segments_info = predictor(image, prompts=PROMPTS, task="panoptic")["panoptic_seg"]
    assert segment_ids.shape == (HEIGHT, WIDTH)
    assert all(s["category_id"] in (0, 1) for s in segments_info)
    referring = predictor(image, prompts=PROMPTS, task="referring")["referring"]
    assert referring["texts"] == PROMPTS and referring["masks"].shape == (2, HEIGHT, WIDTH)
    assert "zebra" not in MetadataCatalog.get(TEST_DATASET).text_prompts  # nothing was registered


def test_mqformer_predictor_defaults_and_errors(predictor, image):
    outputs = predictor(image)  # vocabulary from the metadata, task from MODEL.MQFORMER.TEST.TASK ("all")
    assert {"instances", "sem_seg", "panoptic_seg", "referring"} <= set(outputs)
    with pytest.raises(TypeError, match="list"):
        predictor(image, prompts="zebra")
    with pytest.raises(ValueError, match="task"):
        predictor(image, prompts=PROMPTS, task="depth")


def test_mqformer_predictor_loads_model_weights(tmp_path):
    torch.manual_seed(1)
    model = build_model(config())
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("weights")
    loaded = MQFormerPredictor(config("MODEL.WEIGHTS", str(tmp_path / "weights.pth"))).model.state_dict()
    assert all(torch.equal(value, loaded[key]) for key, value in model.state_dict().items())


def test_demo_draws_pngs_and_never_overwrites(image, tmp_path):
    demo = load_script("demo/demo.py")
    inputs = [tmp_path / "first.jpg", tmp_path / "second.png"]
    for path in inputs:
        cv2.imwrite(str(path), image)
    output = tmp_path / "vis"
    argv = ["--config-file", TINY_CONFIG, "--input", str(tmp_path / "*.*g"), "--output", str(output),
            "--prompts", "zebra, teapot", "--task", "instance", "--confidence-threshold", "0",
            "--opts", *map(str, TINY_OPTIONS)]
    written = demo.main(argv)
    assert sorted(os.listdir(output)) == ["first.png", "second.png"] == sorted(map(os.path.basename, written))
    drawing = cv2.imread(str(output / "first.png"))
    # upscaled 5x (the longer side to 400 px) below a title strip
    assert drawing.shape[1] == 5 * WIDTH and drawing.shape[0] > 5 * HEIGHT
    assert not np.array_equal(cv2.resize(drawing[-5 * HEIGHT:], (WIDTH, HEIGHT)), image)  # something was drawn
    before = os.path.getmtime(output / "first.png")
    with pytest.raises(FileExistsError, match="--overwrite"):
        demo.main(argv)
    assert os.path.getmtime(output / "first.png") == before
    demo.main(argv[:-len(TINY_OPTIONS) - 1] + ["--task", "referring", "--overwrite", "--opts",
                                               *map(str, TINY_OPTIONS)])


@pytest.mark.parametrize("task", ["semantic", "panoptic"])
def test_demo_other_tasks(image, tmp_path, task):
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    written = load_script("demo/demo.py").main(["--config-file", TINY_CONFIG, "--input", str(tmp_path / "photo.png"),
                                "--output", str(tmp_path / task), "--prompts", "sky;grass, wet", "--separator",
                                ";", "--task", task, "--opts", *map(str, TINY_OPTIONS)])
    assert cv2.imread(written[0]).shape[1] == 5 * WIDTH


def test_a_semantic_map_above_the_limit_comes_as_labels_and_scores(image):
    torch.manual_seed(0)
    # 10 KiB: the 2 x 60 x 80 float32 scores (37.5 KiB) exceed it
    small = MQFormerPredictor(config("MODEL.MQFORMER.TEST.SEMANTIC_MAX_SCORES_MB", 0.01))
    bounded = small(image, prompts=PROMPTS, task="semantic")
    assert set(bounded) == {"sem_seg_labels", "sem_seg_scores"}
    assert bounded["sem_seg_labels"].shape == bounded["sem_seg_scores"].shape == (HEIGHT, WIDTH)
    full = small(image, prompts=PROMPTS, task="semantic", semantic_output="scores")["sem_seg"]
    assert torch.allclose(bounded["sem_seg_scores"], full.max(0).values, atol=1e-6)
    assert torch.equal(bounded["sem_seg_labels"], full.argmax(0))
    assert set(small(image, prompts=PROMPTS[:1], task="foreground")) == {"sem_seg"}  # a map of one text


def test_semantic_maps_within_the_limit_stay_maps_unless_labels_are_asked(predictor, image):
    assert set(predictor(image, prompts=PROMPTS, task="semantic")) == {"sem_seg"}
    assert set(predictor(image, prompts=PROMPTS, task="semantic", semantic_output="labels")) == \
        {"sem_seg_labels", "sem_seg_scores"}
    with pytest.raises(ValueError, match="sem_seg_output"):
        predictor(image, prompts=PROMPTS, task="semantic", semantic_output="probabilities")


def test_evaluation_inputs_ask_for_the_score_map(tmp_path):
    from mqformer_d2.data.unified_mapper import UnifiedDatasetMapper

    path = tmp_path / "image.png"
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    mapped = UnifiedDatasetMapper(False, augmentations=[], image_format="BGR")(
        {"file_name": str(path), "height": 8, "width": 8, "dataset_name": TEST_DATASET})
    assert mapped["sem_seg_output"] == "scores"
