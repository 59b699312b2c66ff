"""The tiny MQ-Former end to end on CPU: a training step and every inference output."""
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances
from helpers import config_from_file

torch.set_num_threads(2)


def tiny_cfg(config="configs/mqformer_tiny_cpu.yaml", *options):
    """An unfrozen tiny config with one encoder layer and 256 mask points, then `options`."""
    return config_from_file(config, "MODEL.MQFORMER.PIXEL_DECODER.NUM_LAYERS", 1,
                            "MODEL.MQFORMER.LOSS.NUM_POINTS", 256, *options)


def make_input(height, width, num_targets, vocabulary=("cat", "dog", "a red car"), seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(num_targets, height, width, dtype=torch.bool)
    for i in range(num_targets):
        masks[i, 8 * i: 8 * i + 24, 4 + 6 * i: 36 + 6 * i] = True
    instances = Instances((height, width))
    instances.gt_masks = BitMasks(masks)
    instances.gt_boxes = BitMasks(masks).get_bounding_boxes()
    instances.gt_text_ids = torch.arange(num_targets) % len(vocabulary)
    instances.gt_has_mask = torch.ones(num_targets, dtype=torch.bool)
    instances.gt_has_box = torch.tensor([i % 2 == 0 for i in range(num_targets)])
    return {"image": torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g),
            "height": height, "width": width, "vocabulary": list(vocabulary), "instances": instances}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_cfg())


def _train_step(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model(batch)
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    sum(losses.values()).backward()
    return losses


def test_training_step_reaches_every_parameter(model):
    batch = [make_input(96, 128, 3), make_input(64, 96, 2, vocabulary=("dog", "bird"), seed=1)]
    losses = _train_step(model, batch)
    assert {"loss_ce", "loss_mask", "loss_ce_interm", "loss_ce_dn", "loss_dice_0"} <= set(losses)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    decoder = model.decoder

    def moved(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert moved(decoder.learnable_content) and moved(decoder.learnable_anchors)
    assert moved(decoder.selector.token_projection)
    for layer in decoder.layers:
        assert moved(layer.learnable_to_conditional) and moved(layer.conditional_to_learnable)
    assert moved(model.text_encoder.projection)
    assert not any(p.requires_grad for p in model.text_encoder.clip.parameters())


def test_training_with_an_image_without_targets(model):
    batch = [make_input(64, 64, 0), make_input(64, 64, 1, seed=2)]
    _train_step(model, batch)


def test_training_needs_a_vocabulary(model):
    batch = [make_input(64, 64, 1)]
    del batch[0]["vocabulary"]
    model.train()
    with pytest.raises(ValueError, match="vocabulary"):
        model(batch)


def _eval_inputs():
    # Images resized by the mapper: outputs must come back at the original (height, width).
    first = make_input(96, 128, 1)
    first.update(height=120, width=160)
    second = make_input(64, 96, 1, seed=3)
    for x in (first, second):
        del x["instances"]
    return [first, second]


def test_inference_outputs_at_original_size(model):
    model.eval()
    with torch.no_grad():
        results = model(_eval_inputs())
    for result, (height, width) in zip(results, [(120, 160), (64, 96)]):
        assert set(result) == {"instances", "sem_seg", "panoptic_seg", "referring"}
        instances = result["instances"]
        assert instances.image_size == (height, width)
        assert instances.pred_masks.shape[1:] == (height, width) and instances.pred_masks.dtype == torch.bool
        assert len(instances) == 30  # TEST.DETECTIONS_PER_IMAGE of the tiny config
        assert instances.pred_classes.max() < 3 and instances.scores.shape == (30,)
        assert result["sem_seg"].shape == (3, height, width)
        panoptic, segments = result["panoptic_seg"]
        assert panoptic.shape == (height, width)
        assert all({"id", "category_id", "isthing"} <= set(s) for s in segments)
        referring = result["referring"]
        assert referring["masks"].shape == (3, height, width) and referring["scores"].shape == (3,)


def test_inference_with_nothing_above_threshold():
    torch.manual_seed(0)
    cfg = tiny_cfg("configs/mqformer_tiny_cpu.yaml", "MODEL.MQFORMER.TEST.INSTANCE_SCORE_THRESHOLD", 1.0,
                   "MODEL.MQFORMER.TEST.OBJECT_MASK_THRESHOLD", 1.0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        result = model(_eval_inputs()[:1])[0]
    assert len(result["instances"]) == 0 and result["instances"].pred_masks.shape == (0, 120, 160)
    panoptic, segments = result["panoptic_seg"]
    assert segments == [] and int(panoptic.abs().sum()) == 0
    assert result["referring"]["masks"].shape == (3, 120, 160)


def test_task_selects_outputs(model):
    model.eval()
    inputs = _eval_inputs()
    inputs[0]["task"], inputs[1]["task"] = "semantic", "instance"
    with torch.no_grad():
        results = model(inputs)
    assert set(results[0]) == {"sem_seg"} and set(results[1]) == {"instances"}
