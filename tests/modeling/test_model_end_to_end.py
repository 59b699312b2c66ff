"""The tiny MQ-Former end to end on CPU: a training step and every inference output."""
import pytest
import torch
from detectron2.modeling import build_model
from helpers import eval_inputs, make_model_input, tiny_model_config, train_step

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_model_config("configs/mqformer_tiny_cpu.yaml", "MODEL.MQFORMER.TEXT_ENCODER.FREEZE", True))


def test_training_step_reaches_every_parameter(model):
    batch = [make_model_input(96, 128, 3), make_model_input(64, 96, 2, vocabulary=("dog", "bird"), seed=1)]
    losses = train_step(model, batch)
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
    batch = [make_model_input(64, 64, 0), make_model_input(64, 64, 1, seed=2)]
    train_step(model, batch)


def test_training_needs_a_vocabulary(model):
    batch = [make_model_input(64, 64, 1)]
    del batch[0]["vocabulary"]
    model.train()
    with pytest.raises(ValueError, match="vocabulary"):
        model(batch)


def test_inference_outputs_at_original_size(model):
    model.eval()
    with torch.no_grad():
        results = model(eval_inputs())
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
    cfg = tiny_model_config("configs/mqformer_tiny_cpu.yaml", "MODEL.MQFORMER.TEST.INSTANCE_SCORE_THRESHOLD", 1.0,
                            "MODEL.MQFORMER.TEST.OBJECT_MASK_THRESHOLD", 1.0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        result = model(eval_inputs()[:1])[0]
    assert len(result["instances"]) == 0 and result["instances"].pred_masks.shape == (0, 120, 160)
    panoptic, segments = result["panoptic_seg"]
    assert segments == [] and int(panoptic.abs().sum()) == 0
    assert result["referring"]["masks"].shape == (3, 120, 160)


def test_task_selects_outputs(model):
    model.eval()
    inputs = eval_inputs()
    inputs[0]["task"], inputs[1]["task"] = "semantic", "instance"
    with torch.no_grad():
        results = model(inputs)
    assert set(results[0]) == {"sem_seg"} and set(results[1]) == {"instances"}
