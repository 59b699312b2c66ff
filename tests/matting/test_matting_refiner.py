"""The refinement network, its training, saving / safe loading, and inference on images, trimaps
and masks."""
import logging

import numpy as np
import pytest
import torch

from mqformer_d2.matting.inference import alpha_from_mask, load_refiner, refine
from mqformer_d2.matting.refiner import MattingRefiner
from mqformer_d2.matting.training import matting_losses


def test_refiner_maps_image_and_trimap_to_an_alpha_in_0_1():
    model = MattingRefiner(width=4, context_blocks=1).eval()
    image = torch.rand(2, 3, 16, 24)
    trimap = torch.full((2, 16, 24), 128, dtype=torch.uint8)
    alpha = model(image, trimap)
    assert alpha.shape == (2, 16, 24)
    assert float(alpha.min()) >= 0 and float(alpha.max()) <= 1
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.rand(1, 3, 10, 16), torch.zeros(1, 10, 16))


def test_losses_are_zero_for_a_perfect_alpha_and_count_unknown_pixels_only():
    gt = torch.tensor([[[0.0, 0.5, 1.0]]])
    trimap = torch.tensor([[[0, 128, 255]]])
    assert all(float(v) == 0 for v in matting_losses(gt, gt, trimap).values())
    pred = torch.tensor([[[0.0, 0.25, 1.0]]])
    assert float(matting_losses(pred, gt, trimap)["l1_unknown"]) == pytest.approx(0.25)
    assert float(matting_losses(pred, gt, trimap)["l1_known"]) == 0.0


def test_training_writes_weights_that_load_safely(refiner_weights, tmp_path):
    model = load_refiner(refiner_weights)
    assert isinstance(model, MattingRefiner) and model.width == 4 and not model.training
    checkpoint = torch.load(refiner_weights, weights_only=True)
    assert set(checkpoint) == {"state_dict", "config"}
    other = tmp_path / "other.pth"
    torch.save({"model": {}}, str(other))
    with pytest.raises(ValueError, match="not a matting refiner checkpoint"):
        load_refiner(str(other))
    with pytest.raises(FileNotFoundError, match="do not exist"):
        load_refiner(str(tmp_path / "missing.pth"))


def test_refine_keeps_known_pixels_and_returns_the_image_size(refiner_weights):
    model = load_refiner(refiner_weights)
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    trimap = np.zeros((20, 30), np.uint8)
    trimap[5:15, 5:25] = 128
    trimap[8:12, 10:20] = 255
    alpha = refine(model, image, trimap, resolution=16)  # scaled down to 16 px and back
    assert alpha.shape == (20, 30) and alpha.dtype == np.float32
    assert (alpha[trimap == 0] == 0).all() and (alpha[trimap == 255] == 1).all()
    inside_kept = refine(model, image, trimap, clamp_foreground=False)
    assert (inside_kept[trimap == 0] == 0).all()
    with pytest.raises(ValueError, match="no unknown"):
        refine(model, image, np.zeros((20, 30), np.uint8))


def test_an_empty_mask_gives_an_empty_alpha_and_a_warning(refiner_weights, caplog):
    model = load_refiner(refiner_weights)
    image = np.zeros((16, 16, 3), np.uint8)
    logger = logging.getLogger("mqformer_d2.matting.inference")
    logger.addHandler(caplog.handler)  # detectron2's setup_logger may stop propagation to the root
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            alpha = alpha_from_mask(model, image, np.zeros((16, 16), bool), band=2, where="prompt 'the cat'")
    finally:
        logger.removeHandler(caplog.handler)
    assert (alpha == 0).all() and alpha.shape == (16, 16)
    assert "prompt 'the cat'" in caplog.text and "selected nothing" in caplog.text
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    alpha = alpha_from_mask(model, image, mask, band=2)
    assert (alpha[0] == 0).all() and alpha.max() <= 1


def test_an_untrained_refiner_returns_its_prior():
    """The correction head starts at zero: the output is the prior alpha (closed-form given, or
    the colour prior, which is exact for a flat foreground over a flat background)."""
    model = MattingRefiner(width=4, context_blocks=1, prior="closed_form").eval()
    image = torch.rand(1, 3, 8, 8)
    trimap = torch.full((1, 8, 8), 128, dtype=torch.uint8)
    prior = torch.rand(1, 8, 8) * 0.9 + 0.05
    torch.testing.assert_close(model(image, trimap, prior), prior, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="prior_alpha"):
        model(image, trimap)
    colour = MattingRefiner(width=4, context_blocks=1).eval()
    alpha = torch.tensor([[0.0] * 3 + [0.25, 0.5, 0.75] + [1.0] * 2] * 8)[None]
    red, blue = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.1, 0.9])
    flat = alpha[:, None] * red[None, :, None, None] + (1 - alpha[:, None]) * blue[None, :, None, None]
    trimap = torch.tensor([[0] * 3 + [128] * 3 + [255] * 2] * 8, dtype=torch.uint8)[None]
    torch.testing.assert_close(colour(flat, trimap), alpha, atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="prior must be one of"):
        MattingRefiner(prior="magic")


def test_training_on_the_closed_form_prior(tmp_path):
    """The closed-form alphas are computed once per training trimap (worker processes) and the
    saved refinement asks for them at inference."""
    pytest.importorskip("pymatting")
    from mqformer_d2.data.shapes.matting_split import MattingSplitConfig, load_matting_split
    from mqformer_d2.matting.training import TrainingSettings, train_refiner

    records = load_matting_split(str(tmp_path), MattingSplitConfig(image_size=64, train_images=2, val_images=1), "val")
    settings = TrainingSettings(steps=1, batch_size=1, width=4, context_blocks=1, crop_size=32)
    model = load_refiner(train_refiner(records, str(tmp_path / "refiner"), settings))
    assert model.prior == "closed_form"
    image = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    trimap = np.zeros((24, 24), np.uint8)
    trimap[4:20, 4:20] = 128
    trimap[8:16, 8:16] = 255
    alpha = refine(model, image, trimap)
    assert alpha.shape == (24, 24) and (alpha[trimap == 255] == 1).all()
