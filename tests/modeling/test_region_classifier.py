"""The region classifier: pooling, its loss on ground-truth regions, the fusion at inference."""
import math

import pytest
import torch
from detectron2.modeling import build_model

from helpers import eval_inputs, make_model_input, tiny_model_config, train_step
from mqformer_d2.modeling.decoder.region_classifier import RegionClassifier
from mqformer_d2.modeling.text_batch import TextBatch

DIM = 8


def _text(valid):
    valid = torch.tensor(valid)
    return TextBatch([f"t{i}" for i in range(valid.shape[1])], torch.randn(valid.shape[1], DIM), valid,
                     [row.nonzero()[:, 0] for row in valid])


def _target(labels, boxes, masks, has_box, has_mask):
    return {"labels": torch.tensor(labels, dtype=torch.int64), "boxes": torch.tensor(boxes).reshape(-1, 4),
            "masks": masks, "has_box": torch.tensor(has_box, dtype=torch.bool),
            "has_mask": torch.tensor(has_mask, dtype=torch.bool)}


def test_mask_mean_pooling_averages_the_features_under_the_mask():
    head = RegionClassifier(dim=DIM, pooling="mask_mean", grid_size=4, loss_weight=1.0, test_weight=0.5)
    features = torch.zeros(1, DIM, 4, 4)
    features[0, 0, :2] = 2.0  # channel 0 is 2 on the top half
    captured = {}
    head.embed.register_forward_hook(lambda module, args, out: captured.update(pooled=args[0]))
    masks = torch.zeros(1, 2, 4, 4)
    masks[0, 0, :2] = 1.0  # top half
    masks[0, 1, 1:3] = 1.0  # rows 1-2: half on the top half
    head.region_logits(features, torch.ones(1, 2), torch.zeros(1, 2, 4), masks, torch.randn(3, DIM))
    assert torch.allclose(captured["pooled"][0, :, 0], torch.tensor([2.0, 1.0]))


def test_loss_reads_boxes_or_masks_and_skips_what_the_pooling_cannot_read():
    """Image 0: a thing, stuff (no box target; its box around its mask is still read by "box_grid")
    and a box-only object (no mask: skipped by "mask_mean"); image 1 has no target."""
    torch.manual_seed(0)
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[0, :8, :8] = masks[1, 8:] = True
    targets = [_target([0, 1, 2], [[0.25, 0.25, 0.5, 0.5], [0.5, 0.75, 1.0, 0.5], [0.7, 0.3, 0.2, 0.2]], masks,
                       [True, False, True], [True, True, False]),
               _target([], [], torch.zeros(0, 16, 16, dtype=torch.bool), [], [])]
    text = _text([[True, True, True, False], [False, True, True, True]])
    features = torch.randn(2, DIM, 4, 4, requires_grad=True)
    for pooling, regions in (("box_grid", 3), ("mask_mean", 2), ("mask_grid", 2)):
        head = RegionClassifier(dim=DIM, pooling=pooling, grid_size=2, loss_weight=3.0, test_weight=0.5)
        boxes, pooled_masks, labels, present = head._target_regions(targets, (4, 4))
        assert int(present.sum()) == regions and labels[0].tolist() == [0, 1, 2]
        loss = head.loss(features, torch.ones(2, 2), targets, text)["loss_region_ce"]
        logits = head.region_logits(features, torch.ones(2, 2), boxes, pooled_masks, text.embeddings)[0, :3]
        logits = logits.masked_fill(~text.valid[0], -math.inf)[present[0]]
        expected = 3.0 * torch.nn.functional.cross_entropy(logits, labels[0][present[0]])
        assert torch.allclose(loss, expected)
        loss.backward()
        assert features.grad[0].abs().sum() > 0 and features.grad[1].abs().sum() == 0
        features.grad = None


def test_loss_without_regions_is_a_connected_zero():
    head = RegionClassifier(dim=DIM, pooling="box_grid", grid_size=2, loss_weight=1.0, test_weight=0.5)
    target = _target([], [], torch.zeros(0, 8, 8, dtype=torch.bool), [], [])
    features = torch.randn(1, DIM, 2, 2, requires_grad=True)
    loss = head.loss(features, torch.ones(1, 2), [target], _text([[True, True]]))["loss_region_ce"]
    assert float(loss) == 0.0 and loss.requires_grad


def test_fusion_is_the_geometric_ensemble_and_spares_single_text_images():
    torch.manual_seed(0)
    head = RegionClassifier(dim=DIM, pooling="box_grid", grid_size=2, loss_weight=1.0, test_weight=0.25)
    text = _text([[True, True, False], [True, False, False]])
    outputs = {"pred_logits": torch.randn(2, 5, 3), "pred_boxes": torch.rand(2, 5, 4) * 0.5 + 0.25,
               "pred_masks": torch.randn(2, 5, 4, 4)}
    features = torch.randn(2, DIM, 4, 4)
    fused = head.fuse(outputs, features, torch.ones(2, 2), text)
    region = head.region_logits(features, torch.ones(2, 2), outputs["pred_boxes"], None, text.embeddings)
    p_region = torch.softmax(region[0, :, :2], -1)
    expected = outputs["pred_logits"][0, :, :2].sigmoid() ** 0.75 * p_region ** 0.25
    assert torch.allclose(fused[0, :, :2].sigmoid(), expected, atol=1e-5)
    assert torch.isinf(fused[0, :, 2]).all()
    assert torch.equal(fused[1], outputs["pred_logits"][1])  # one text: the query logits as they are


def test_settings_are_checked():
    with pytest.raises(ValueError, match="POOLING"):
        RegionClassifier(dim=DIM, pooling="mean", grid_size=2, loss_weight=1.0, test_weight=0.5)
    with pytest.raises(ValueError, match="TEST_WEIGHT"):
        RegionClassifier(dim=DIM, pooling="box_grid", grid_size=2, loss_weight=1.0, test_weight=1.5)


def test_mask_grid_reads_the_features_under_the_mask_and_the_silhouette():
    """A box over a 4x4 block whose left half is the mask: the feature grid is zero on the right
    half (masked out), the mask grid is the silhouette."""
    head = RegionClassifier(dim=DIM, pooling="mask_grid", grid_size=2, loss_weight=1.0, test_weight=0.5)
    features = torch.ones(1, DIM, 8, 8)
    masks = torch.zeros(1, 1, 8, 8)
    masks[0, 0, 2:6, 2:4] = 1.0
    box = torch.tensor([[[0.5, 0.5, 0.5, 0.5]]])  # columns and rows 2-5
    grid = head._mask_grid(features, torch.ones(1, 2), box, masks).view(DIM + 1, 2, 2)
    assert torch.allclose(grid[-1], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(grid[:DIM], grid[-1].expand(DIM, 2, 2))


@pytest.mark.parametrize("pooling", ["box_grid", "mask_mean", "mask_grid"])
def test_model_trains_and_predicts_with_the_region_classifier(pooling):
    cfg = tiny_model_config("configs/mqformer_tiny_cpu.yaml", "MODEL.MQFORMER.REGION_CLASSIFIER.POOLING", pooling)
    torch.manual_seed(0)
    model = build_model(cfg)
    losses = train_step(model, [make_model_input(64, 64, 3), make_model_input(64, 96, 0, seed=1)])
    assert float(losses["loss_region_ce"]) > 0
    assert model.region_classifier.embed.layers[0].weight.grad.abs().sum() > 0
    assert model.backbone.res2[0].conv1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        outputs = model(eval_inputs())
    assert outputs[0]["sem_seg"].shape == (3, 120, 160) and len(outputs[1]["instances"]) > 0
