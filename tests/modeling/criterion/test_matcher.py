"""HungarianMatcher: optimal, batch-invariant, robust to empty images, and honest about has_box /
has_mask (targets without them pay no box / mask cost)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou, sigmoid_focal_loss

from mqformer_d2.modeling.criterion import HungarianMatcher, LossWeights

HM, HPAD, T = 8, 32, 6  # mask-logit size, padded image size (4x), texts in the batch union


def random_targets(k, gen, has_box=None, has_mask=None):
    cxcy = torch.rand(k, 2, generator=gen) * 0.6 + 0.2
    wh = torch.rand(k, 2, generator=gen) * 0.3 + 0.05
    return {
        "labels": torch.randint(0, T, (k,), generator=gen),
        "boxes": torch.cat([cxcy, wh], 1),
        "masks": torch.rand(k, HPAD, HPAD, generator=gen) > 0.5,
        "has_mask": torch.ones(k, dtype=torch.bool) if has_mask is None else has_mask,
        "has_box": torch.ones(k, dtype=torch.bool) if has_box is None else has_box,
    }


def random_outputs(b, q, gen):
    return {
        "pred_logits": torch.randn(b, q, T, generator=gen),
        "pred_boxes": torch.rand(b, q, 4, generator=gen) * 0.5 + 0.1,
        "pred_masks": torch.randn(b, q, HM, HM, generator=gen),
    }


def matched_cost(cost, indices):
    rows, cols = indices
    return float(cost[rows, cols].sum())


def brute_force_min(cost):
    q, k = cost.shape
    if q >= k:  # every target gets a distinct query
        return min(
            float(cost[list(p), list(range(k))].sum()) for p in itertools.permutations(range(q), k)
        )
    return min(
        float(cost[list(range(q)), list(p)].sum()) for p in itertools.permutations(range(k), q)
    )


@pytest.mark.parametrize("q,k", [(5, 3), (4, 4), (3, 5)])
def test_assignment_is_brute_force_optimum(q, k):
    gen = torch.Generator().manual_seed(q * 10 + k)
    matcher = HungarianMatcher(num_points=64)
    for trial in range(4):
        outputs = random_outputs(1, q, gen)
        targets = [random_targets(k, gen)]
        torch.manual_seed(trial)
        cost = matcher.cost_matrices(outputs, targets)[0]
        torch.manual_seed(trial)  # same mask points for the matching as for the cost above
        indices = matcher(outputs, targets)[0]
        assert len(indices[0]) == min(q, k)
        assert len(set(indices[0].tolist())) == len(indices[0])  # one-to-one
        assert matched_cost(cost, indices) == pytest.approx(brute_force_min(cost), abs=1e-4)


def test_class_and_box_costs_match_their_definitions():
    gen = torch.Generator().manual_seed(0)
    outputs, targets = random_outputs(1, 4, gen), [random_targets(3, gen)]
    del outputs["pred_masks"]
    matcher = HungarianMatcher(weights=LossWeights(class_weight=2.0, bbox_weight=5.0, giou_weight=3.0))
    cost = matcher.cost_matrices(outputs, targets)[0]
    logits, boxes = outputs["pred_logits"][0], outputs["pred_boxes"][0]
    xyxy = lambda b: box_convert(b, "cxcywh", "xyxy")  # noqa: E731
    for i in range(4):
        for j in range(3):
            x = logits[i, targets[0]["labels"][j]]
            focal = sigmoid_focal_loss(x, torch.tensor(1.0)) - sigmoid_focal_loss(
                x, torch.tensor(0.0)
            )
            l1 = (boxes[i] - targets[0]["boxes"][j]).abs().sum()
            giou = generalized_box_iou(xyxy(boxes[i : i + 1]), xyxy(targets[0]["boxes"][j : j + 1]))
            expected = 2.0 * focal + 5.0 * l1 - 3.0 * giou[0, 0]
            assert cost[i, j] == pytest.approx(float(expected), abs=1e-5)


def test_batched_equals_per_image():
    gen = torch.Generator().manual_seed(1)
    outputs = random_outputs(3, 7, gen)
    targets = [random_targets(k, gen) for k in (2, 0, 5)]
    matcher = HungarianMatcher(num_points=50)
    torch.manual_seed(5)
    batched = matcher(outputs, targets)
    for b in range(3):
        single = {k: v[b : b + 1] for k, v in outputs.items()}
        torch.manual_seed(5)
        rows, cols = matcher(single, [targets[b]])[0]
        assert torch.equal(rows, batched[b][0]) and torch.equal(cols, batched[b][1])


def test_empty_targets():
    gen = torch.Generator().manual_seed(2)
    outputs = random_outputs(2, 5, gen)
    indices = HungarianMatcher(num_points=16)(outputs, [random_targets(0, gen)] * 2)
    for rows, cols in indices:
        assert rows.dtype == cols.dtype == torch.int64
        assert rows.numel() == 0 and cols.numel() == 0


def test_targets_without_box_or_mask_pay_no_such_cost():
    gen = torch.Generator().manual_seed(3)
    outputs = random_outputs(1, 6, gen)
    flags = torch.tensor([True, False, True])
    tgt = random_targets(3, gen, has_box=flags.clone(), has_mask=flags.clone())
    matcher = HungarianMatcher(weights=LossWeights(class_weight=0.0), num_points=32)
    torch.manual_seed(0)
    cost = matcher.cost_matrices(outputs, [tgt])[0]
    assert torch.all(cost[:, 1] == 0)  # only box and mask costs are on, and target 1 has neither

    perturbed = dict(tgt, boxes=tgt["boxes"].clone(), masks=tgt["masks"].clone())
    perturbed["boxes"][1] = torch.tensor([0.0, 0.0, 0.0, 0.0])  # degenerate: must not be read
    perturbed["masks"][1] = ~perturbed["masks"][1]
    torch.manual_seed(0)
    assert torch.equal(cost, matcher.cost_matrices(outputs, [perturbed])[0])

    # and perturbing a target that has them does change its column
    perturbed["boxes"][0] = torch.tensor([0.9, 0.9, 0.1, 0.1])
    torch.manual_seed(0)
    assert not torch.equal(cost[:, 0], matcher.cost_matrices(outputs, [perturbed])[0][:, 0])


def test_non_finite_predictions_raise():
    gen = torch.Generator().manual_seed(5)
    outputs = random_outputs(1, 3, gen)
    outputs["pred_logits"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        HungarianMatcher(num_points=8)(outputs, [random_targets(2, gen)])


def test_mask_cost_matches_its_definition():
    gen = torch.Generator().manual_seed(6)
    pred = torch.randn(3, HM, HM, generator=gen)
    tgt = random_targets(2, gen)
    coords = torch.rand(1, 40, 2, generator=gen)
    matcher = HungarianMatcher(weights=LossWeights(mask_weight=2.0, dice_weight=3.0))
    cost = matcher.mask_cost(pred, tgt["masks"], tgt["has_mask"], coords)
    grid = coords[:, :, None] * 2 - 1  # point_sample's convention, border padding
    sample = lambda m: F.grid_sample(
        m[None].float(),
        grid.expand(1, -1, -1, -1),  # noqa: E731
        align_corners=False,
        padding_mode="border",
    )[0, :, :, 0]
    x, t = sample(pred), sample(tgt["masks"])
    for i in range(3):
        for j in range(2):
            bce = F.binary_cross_entropy_with_logits(x[i], t[j])
            p = x[i].sigmoid()
            dice = 1 - (2 * (p * t[j]).sum() + 1) / (p.sum() + t[j].sum() + 1)
            assert cost[i, j] == pytest.approx(float(2.0 * bce + 3.0 * dice), abs=1e-5)
