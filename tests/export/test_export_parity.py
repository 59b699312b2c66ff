"""The ONNX export in onnxruntime gives the PyTorch model's results: instance masks (IoU), scores,
semantic scores and panoptic segments, on images of several sizes (the graph's size is free)."""
import numpy as np
import onnx
import pytest
import torch
from export_vocabulary import EXPORT_STUFF, EXPORT_VOCABULARY
from helpers import mask_iou

from mqformer_d2 import MQFormerPredictor
from mqformer_d2.export.runtime import ExportedPredictor

torch.set_num_threads(2)
SIZES = [(64, 64), (60, 80), (96, 72)]  # (height, width): one traced size and two others
PROMPTS = ["red star", "a blue cross on the left", "sky"]


def benchmark_like_image(height, width, seed):
    """Coloured rectangles on a noisy background (BGR uint8)."""
    rng = np.random.RandomState(seed)
    image = rng.randint(0, 60, (height, width, 3)).astype(np.uint8)
    for _ in range(3):
        y, x = rng.randint(0, height - 16), rng.randint(0, width - 16)
        image[y:y + 16, x:x + 16] = rng.randint(80, 256, 3)
    return image


@pytest.fixture(scope="module")
def predictors(onnx_export):
    cfg, model, files = onnx_export
    pytorch = MQFormerPredictor(cfg)
    pytorch.model.load_state_dict(model.state_dict())  # the exported weights
    return pytorch, ExportedPredictor(files.folder)


def test_the_graph_takes_any_image_size_and_prompt_count(onnx_export):
    graph = onnx.load(onnx_export[2].graph_path)
    shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert isinstance(shapes["image"][2], str) and isinstance(shapes["image"][3], str)
    assert isinstance(shapes["text_embeddings"][0], str)
    assert {node.op_type for node in graph.graph.node} >= {"GridSample"}  # deformable attention


@pytest.mark.parametrize("size", SIZES)
def test_instances_match(predictors, size):
    pytorch, exported = predictors
    image = benchmark_like_image(*size, seed=size[0])
    a = pytorch(image, PROMPTS, "instance")["instances"]
    b = exported(image, PROMPTS, "instance")["instances"]
    assert len(a) == len(b) > 0 and b.image_size == size
    assert torch.equal(a.pred_classes, b.pred_classes)
    assert (a.scores - b.scores).abs().max() <= 1e-3
    assert (a.pred_boxes.tensor - b.pred_boxes.tensor).abs().max() <= 1e-2
    assert min(mask_iou(x, y) for x, y in zip(a.pred_masks, b.pred_masks)) >= 0.99


@pytest.mark.parametrize("size", SIZES[1:])
def test_semantic_and_panoptic_match(predictors, size):
    pytorch, exported = predictors
    image = benchmark_like_image(*size, seed=size[1])
    a, b = pytorch(image, PROMPTS, "semantic")["sem_seg"], exported(image, PROMPTS, "semantic")["sem_seg"]
    assert a.shape == b.shape == (len(PROMPTS), *size)
    assert (a - b).abs().max() <= 1e-3
    (ids_a, info_a), (ids_b, info_b) = (p(image, PROMPTS, "panoptic", **k)["panoptic_seg"] for p, k in
                                        ((pytorch, {"stuff_prompts": EXPORT_STUFF}), (exported, {})))
    assert (ids_a == ids_b).float().mean() >= 0.99
    assert [s["category_id"] for s in info_a] == [s["category_id"] for s in info_b]
    assert [s["isthing"] for s in info_b] == [PROMPTS[s["category_id"]] not in EXPORT_STUFF for s in info_b]


def test_default_prompts_are_the_exported_vocabulary(predictors):
    _, exported = predictors
    sem_seg = exported(benchmark_like_image(64, 64, 3), task="semantic")["sem_seg"]
    assert sem_seg.shape[0] == len(EXPORT_VOCABULARY)
