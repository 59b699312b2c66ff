"""SetCriterion: loss names and values, vocabulary masking, has_box / has_mask handling,
normalisation, gradients, denoising and empty images."""

import pytest
import torch
from helpers import make_targets

from mqformer_d2.modeling.criterion import HungarianMatcher, LossWeights, SetCriterion
from mqformer_d2.modeling.denoising import build_denoising_queries
from mqformer_d2.modeling.text_batch import TextBatch

HM, HPAD, T, Q, D = 8, 32, 6, 5, 8
BASE = ["loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"]


def texts_for(targets):
    """The batch's TextBatch: T union texts; image b's vocabulary is texts 0..3, texts 4, 5 belong
    to another image of the batch."""
    valid = torch.zeros(len(targets), T, dtype=torch.bool)
    valid[:, :4] = True
    return TextBatch([f"text {t}" for t in range(T)], torch.zeros(T, D), valid, [torch.arange(4)] * len(targets))


def pred_set(batch, q, gen):
    return {
        "pred_logits": torch.randn(batch, q, T, generator=gen, requires_grad=True),
        "pred_boxes": (torch.rand(batch, q, 4, generator=gen) * 0.5 + 0.1).requires_grad_(),
        "pred_masks": torch.randn(batch, q, HM, HM, generator=gen, requires_grad=True),
    }


def make_outputs(targets, gen, num_aux=2, dn=True):
    """(outputs, dn_meta): prediction sets like the decoder's, and the denoising metadata (None
    without DN or when no image has a target)."""
    batch = len(targets)
    out = pred_set(batch, Q, gen)
    out["aux_outputs"] = [pred_set(batch, Q, gen) for _ in range(num_aux)]
    out["interm_outputs"] = pred_set(batch, Q, gen)
    out["query_types"] = torch.tensor([0, 0, 1, 1, 1])
    queries = (
        build_denoising_queries(
            targets, torch.randn(T, D), texts_for(targets).valid, num_matching_queries=Q, dn_query_budget=6
        )
        if dn
        else None
    )
    if queries is not None:
        n_dn = queries.meta["num_dn_queries"]
        out["dn_outputs"] = pred_set(batch, n_dn, gen)
        out["dn_outputs"]["aux_outputs"] = [pred_set(batch, n_dn, gen) for _ in range(num_aux)]
    return out, queries.meta if queries is not None else None


def make_criterion(weights=LossWeights(), **kw):
    return SetCriterion(matcher=HungarianMatcher(weights=weights, num_points=64), weights=weights, num_points=64, **kw)


def expected_keys(num_aux=2, dn=True):
    suffixes = [""] + [f"_{i}" for i in range(num_aux)] + ["_interm"]
    if dn:
        suffixes += ["_dn"] + [f"_dn_{i}" for i in range(num_aux)]
    return {b + s for b in BASE for s in suffixes}


def test_all_losses_finite_and_positive():
    gen = torch.Generator().manual_seed(0)
    targets = make_targets([3, 2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    losses = make_criterion(denoising=True)(outputs, targets, texts_for(targets), dn_meta)
    assert set(losses) == expected_keys()
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value) and value > 0, name


def test_losses_are_weighted():
    gen = torch.Generator().manual_seed(1)
    targets = make_targets([2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen, num_aux=0, dn=False)
    del outputs["interm_outputs"]
    torch.manual_seed(0)
    base = make_criterion()(outputs, targets, texts_for(targets), dn_meta)
    torch.manual_seed(0)
    # Doubling every weight doubles every matching cost too, which leaves the assignment as it was.
    doubled = make_criterion(
        LossWeights(class_weight=8.0, bbox_weight=10.0, giou_weight=4.0, mask_weight=10.0, dice_weight=10.0)
    )(outputs, targets, texts_for(targets), dn_meta)
    for name in BASE:
        assert doubled[name].item() == pytest.approx(2 * base[name].item(), rel=1e-5)


def perfect_outputs(targets):
    """Query q predicts target q exactly (masks constant over the image so that sampling at any
    point is exact); the remaining queries are confident negatives."""
    k = targets[0]["labels"].shape[0]
    logits = torch.full((1, Q, T), -20.0)
    logits[0, torch.arange(k), targets[0]["labels"]] = 20.0
    boxes = torch.full((1, Q, 4), 0.5)
    boxes[0, :k] = targets[0]["boxes"]
    masks = torch.full((1, Q, HM, HM), -30.0)
    masks[0, :k] = targets[0]["masks"][:, :HM, :HM].float() * 60.0 - 30.0
    return {
        "pred_logits": logits,
        "pred_boxes": boxes,
        "pred_masks": masks,
    }


def test_perfect_predictions_give_near_zero_losses():
    gen = torch.Generator().manual_seed(2)
    targets = make_targets([3], gen, HPAD)
    targets[0]["masks"][0] = True  # full
    targets[0]["masks"][1] = False  # empty, but annotated as empty
    targets[0]["masks"][2] = True
    targets[0]["has_mask"][2] = False  # a box-only target
    criterion, perfect = make_criterion(), perfect_outputs(targets)
    indices = criterion.match(perfect, targets)  # what the criterion matches the final layer with
    assert indices[0][0].tolist() == [0, 1, 2] and indices[0][1].tolist() == [0, 1, 2]
    losses = criterion(perfect, targets, texts_for(targets))
    for name in ["loss_bbox", "loss_giou", "loss_mask", "loss_dice", "loss_ce"]:
        assert losses[name] < 1e-4, name


def test_columns_outside_vocabulary_are_ignored():
    gen = torch.Generator().manual_seed(3)
    targets = make_targets([3, 1], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    criterion = make_criterion(denoising=True)
    torch.manual_seed(0)
    before = criterion(outputs, targets, texts_for(targets), dn_meta)
    for out in [outputs, *outputs["aux_outputs"], outputs["interm_outputs"], outputs["dn_outputs"]]:
        with torch.no_grad():
            out["pred_logits"][:, :, 4:] = torch.randn_like(out["pred_logits"][:, :, 4:]) * 50
    torch.manual_seed(0)
    after = criterion(outputs, targets, texts_for(targets), dn_meta)
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_label_outside_vocabulary_is_an_error():
    gen = torch.Generator().manual_seed(4)
    targets = make_targets([2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen, dn=False)
    targets[0]["labels"][1] = 5
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]"):
        make_criterion()(outputs, targets, texts_for(targets), dn_meta)


def test_text_valid_must_match_the_logits():
    gen = torch.Generator().manual_seed(5)
    targets = make_targets([2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen, dn=False)
    text = texts_for(targets)
    with pytest.raises(ValueError, match=r"text\.valid must be bool \(B, T\)"):
        make_criterion()(outputs, targets, text._replace(valid=text.valid[:, :4]))


def test_missing_target_key_is_named():
    gen = torch.Generator().manual_seed(5)
    targets = make_targets([2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen, dn=False)
    del targets[0]["has_box"]
    with pytest.raises(ValueError, match="has_box"):
        make_criterion()(outputs, targets, texts_for(targets), dn_meta)


def test_targets_are_checked_and_moved_once_per_batch(monkeypatch):
    """Not again for each of the final, auxiliary, proposal and denoising prediction sets."""
    from mqformer_d2.modeling.criterion import loss_targets

    gen = torch.Generator().manual_seed(5)
    targets = make_targets([2, 1], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    calls = []
    check = loss_targets.validate_targets
    monkeypatch.setattr(loss_targets, "validate_targets", lambda *args: calls.append(args) or check(*args))
    make_criterion(denoising=True)(outputs, targets, texts_for(targets), dn_meta)
    assert len(calls) == 1 and calls[0][2] is not None  # with the vocabulary: labels checked too


def test_targets_without_masks_or_boxes_contribute_nothing_there():
    gen = torch.Generator().manual_seed(6)
    targets = make_targets([3], gen, HPAD)
    targets[0]["has_mask"][1] = False
    targets[0]["has_box"][2] = False
    outputs, dn_meta = make_outputs(targets, gen, dn=True)
    criterion = make_criterion(denoising=True)
    torch.manual_seed(0)
    before = criterion(outputs, targets, texts_for(targets), dn_meta)
    targets[0]["masks"][1] = ~targets[0]["masks"][1]
    targets[0]["boxes"][2] = torch.tensor([0.9, 0.1, 0.0, 0.0])  # degenerate: must not be read
    torch.manual_seed(0)
    after = criterion(outputs, targets, texts_for(targets), dn_meta)
    for name in before:
        assert torch.equal(before[name], after[name]), name

    for t in targets:
        t["has_mask"][:] = False
        t["has_box"][:] = False
    losses = criterion(outputs, targets, texts_for(targets), dn_meta)
    for name, value in losses.items():
        if not name.startswith("loss_ce"):
            assert value == 0, name
    assert losses["loss_ce"] > 0


def test_normalised_per_target():
    """Two copies of one image give the same class and box losses as the image alone."""
    gen = torch.Generator().manual_seed(7)
    targets = make_targets([3], gen, HPAD)
    single, _ = make_outputs(targets, gen, num_aux=0, dn=False)
    double = {
        k: torch.cat([v, v])
        for k, v in single.items()
        if k in ("pred_logits", "pred_boxes", "pred_masks")
    }
    criterion = make_criterion()
    one, two = criterion(single, targets, texts_for(targets)), criterion(double, targets * 2, texts_for(targets * 2))
    for name in ["loss_ce", "loss_bbox", "loss_giou"]:
        assert two[name].item() == pytest.approx(one[name].item(), rel=1e-5)


def test_gradients_reach_every_output():
    gen = torch.Generator().manual_seed(8)
    targets = make_targets([3, 2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    sum(make_criterion(denoising=True)(outputs, targets, texts_for(targets), dn_meta).values()).backward()
    sets = [
        outputs,
        *outputs["aux_outputs"],
        outputs["interm_outputs"],
        outputs["dn_outputs"],
        *outputs["dn_outputs"]["aux_outputs"],
    ]
    for i, out in enumerate(sets):
        for key in ("pred_logits", "pred_boxes", "pred_masks"):
            grad = out[key].grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, (
                i,
                key,
            )


def test_image_without_targets():
    gen = torch.Generator().manual_seed(9)
    targets = make_targets([0, 2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    criterion = make_criterion(denoising=True)
    assert criterion.match(outputs, targets)[0][0].numel() == 0
    losses = criterion(outputs, targets, texts_for(targets), dn_meta)
    assert set(losses) == expected_keys()
    assert all(torch.isfinite(v) for v in losses.values())


def test_batch_without_any_target_keeps_the_same_keys():
    gen = torch.Generator().manual_seed(10)
    targets = make_targets([0, 0], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    assert "dn_outputs" not in outputs  # DN disabled for this batch
    losses = make_criterion(denoising=True)(outputs, targets, texts_for(targets), dn_meta)
    assert set(losses) == expected_keys()  # every worker logs the same keys
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0  # the class loss still pushes queries to negative
    total.backward()
    assert outputs["pred_boxes"].grad is not None  # still tied to the graph (DDP)


def test_dn_query_count_mismatch_is_reported():
    gen = torch.Generator().manual_seed(11)
    targets = make_targets([2], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    dn_meta = dict(dn_meta, num_dn_queries=99)
    with pytest.raises(ValueError, match="num_dn_queries"):
        make_criterion(denoising=True)(outputs, targets, texts_for(targets), dn_meta)


def test_normalisers_are_averaged_over_workers(monkeypatch):
    """With a (simulated) second worker holding the same targets, the losses do not change."""
    from detectron2.utils import comm

    gen = torch.Generator().manual_seed(12)
    targets = make_targets([3, 1], gen, HPAD)
    outputs, dn_meta = make_outputs(targets, gen)
    criterion = make_criterion(denoising=True)
    torch.manual_seed(0)
    alone = criterion(outputs, targets, texts_for(targets), dn_meta)
    calls = []

    def fake_all_reduce(tensor):
        calls.append(tensor.shape)
        tensor.mul_(2)  # the other worker's counts equal this one's

    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", fake_all_reduce)
    torch.manual_seed(0)
    together = criterion(outputs, targets, texts_for(targets), dn_meta)
    assert calls == [torch.Size([6])]  # one collective per forward, DN or not
    for name in alone:
        assert together[name].item() == pytest.approx(alone[name].item(), rel=1e-6), name
