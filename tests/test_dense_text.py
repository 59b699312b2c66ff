"""The auxiliary dense text loss: token labels from masks, and a loss that can be driven down."""
import torch
from detectron2.modeling import build_model
from engine_fixtures import TINY_CONFIG, TINY_OPTIONS

from mqformer_d2.engine import build_config
from mqformer_d2.modeling.dense_text import token_text_labels

torch.set_num_threads(2)


def test_token_labels_follow_the_masks_at_every_level():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, :8, :8] = True  # top-left quarter
    masks[1, :, :] = True  # everything (e.g. stuff)
    labels = torch.tensor([2, 0])
    shapes = torch.tensor([[4, 4], [2, 2]])
    out = token_text_labels(masks, labels, shapes, num_texts=3)
    assert out.shape == (16 + 4, 3)
    assert out[:, 0].all() and not out[:, 1].any()  # text 0 covers all; text 1 is nobody's
    fine = out[:16, 2].view(4, 4)
    assert fine[:2, :2].all() and fine.sum() == 4  # the quarter, at stride 4
    coarse = out[16:, 2].view(2, 2)
    assert coarse[0, 0] and coarse.sum() == 1


def _model(weight):
    cfg = build_config(TINY_CONFIG, [*TINY_OPTIONS, "MODEL.MQFORMER.LOSS.DENSE_TEXT_WEIGHT", weight])
    return build_model(cfg)


def _batch():
    from detectron2.structures import BitMasks, Boxes, Instances

    torch.manual_seed(0)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    image[:, 8:40, 8:40] = 255
    instances = Instances((64, 64))
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 8:40, 8:40] = True
    instances.gt_masks = BitMasks(mask)
    instances.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 40.0, 40.0]]))
    instances.gt_text_ids = torch.tensor([0])
    return [{"image": image, "vocabulary": ["square", "circle"], "instances": instances}]


def test_dense_text_head_exists_only_when_weighted_and_adds_its_loss():
    assert _model(0.0).dense_text is None
    model = _model(2.0).train()
    losses = model(_batch())
    assert "loss_dense_text" in losses and losses["loss_dense_text"] > 0
    losses["loss_dense_text"].backward()
    assert model.dense_text.classifier.query_projection.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
