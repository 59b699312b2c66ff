"""Training diagnostics: hand-made cases of each value, logging into detectron2's EventStorage, and
their panels in the curves."""

import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from helpers import make_model_input, tiny_model_config, train_step
from mqformer_d2.experiments.results import plot_training_curves
from mqformer_d2.modeling.meta_arch import training_diagnostics as diag
from mqformer_d2.modeling.text_batch import TextBatch


def _targets():
    """One 8x8 image: a thing on the top-left 4x4 block, stuff on the bottom half."""
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 4:] = True
    return [{"labels": torch.tensor([0, 1]), "boxes": torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.5, 0.75, 1.0, 0.5]]),
             "masks": masks, "has_box": torch.tensor([True, False]), "has_mask": torch.tensor([True, True])}]


def test_selected_share_counts_thing_cells_only():
    centers = torch.tensor([[[0.1, 0.1], [0.4, 0.3], [0.9, 0.9], [0.9, 0.1]]])  # thing, thing, stuff, nothing
    assert diag.selected_in_things(centers, _targets(), torch.ones(1, 2)) == 0.5
    # The image fills the left half of the padded frame: x = 0.9 of the image is padded column 3.
    assert diag.selected_in_things(centers, _targets(), torch.tensor([[0.5, 1.0]])) == 0.75
    no_thing = _targets()
    no_thing[0]["has_box"][0] = False
    assert diag.selected_in_things(centers, no_thing, torch.ones(1, 2)) is None


def test_best_proposal_iou_per_thing():
    proposals = torch.full((1, 2, 4, 4), -5.0)  # stride 2: the thing is the top-left 2x2 cells
    proposals[0, 0, :2, :1] = 5.0  # half of the thing: IoU 0.5
    proposals[0, 1, :2, :3] = 5.0  # the thing and two more cells: IoU 4 / 6
    assert abs(diag.best_proposal_iou(proposals, _targets()) - 4 / 6) < 1e-6


def test_thing_name_cosines():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    text = TextBatch(["a", "b", "c"], embeddings, torch.ones(1, 3, dtype=torch.bool), [torch.arange(3)])
    targets = _targets()
    assert diag.thing_name_cosines(text, targets) == {}  # one thing name
    targets[0]["labels"], targets[0]["has_box"] = torch.tensor([0, 2]), torch.tensor([True, True])
    values = diag.thing_name_cosines(text, targets)
    assert abs(values["thing_name_cos_mean"]) < 1e-6 and abs(values["thing_name_cos_max"]) < 1e-6


def test_training_step_logs_the_diagnostics_and_the_curves_draw_them(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    batch = [make_model_input(64, 64, 3), make_model_input(64, 96, 2, seed=1)]
    train_step(model, batch)  # outside a trainer: no storage, nothing logged, no error
    with EventStorage() as storage:
        train_step(model, batch)
        logged = {k: v for k, (v, _) in storage.latest().items() if k.startswith(diag.PREFIX)}
    assert set(logged) == {f"diag/{name}" for name in ("logit_scale", "logit_bias", "thing_name_cos_mean",
                                                        "thing_name_cos_max", "selected_in_things",
                                                        "best_proposal_iou")}
    assert 0.0 <= logged["diag/selected_in_things"] <= 1.0 and 0.0 <= logged["diag/best_proposal_iou"] <= 1.0
    assert abs(logged["diag/logit_scale"] - 1 / 0.07) < 0.5
    records = [dict(logged, iteration=i, total_loss=1.0) for i in (19, 39)]
    path = tmp_path / "curves.png"
    plot_training_curves({"run": records}, str(path))
    assert path.stat().st_size > 0


def test_diagnostics_draw_no_random_numbers():
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    batch = [make_model_input(64, 64, 3)]
    model.train()
    with torch.no_grad():
        outputs = model.decoder(*_encoded(model, batch))
    state = torch.get_rng_state()
    diag.training_diagnostics(outputs, _targets_of(model, batch), _encoded(model, batch)[1],
                              model.decoder.heads.class_calibration(), torch.ones(1, 2))
    assert torch.equal(state, torch.get_rng_state())


def _encoded(model, batch):
    encoded = model.encode(batch)
    return encoded.pixel, encoded.text


def _targets_of(model, batch):
    from mqformer_d2.modeling.criterion import batch_targets

    encoded = model.encode(batch)
    return batch_targets(batch, encoded.text.local_to_union, tuple(encoded.images.tensor.shape[-2:]), model.device)
