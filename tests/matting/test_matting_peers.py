"""The pymatting peers on a tiny composite, and the peer table's formatting."""
import numpy as np
import pytest

from mqformer_d2.matting.peer_table import format_table, mean_over_seeds
from mqformer_d2.matting.peers import closed_form_alpha, knn_alpha

pytest.importorskip("pymatting")


def _composite():
    """A 12x12 red-over-blue ramp: alpha 0 on the left, 1 on the right, a 4-pixel ramp."""
    alpha = np.clip((np.arange(12) - 4) / 4.0, 0, 1)[None].repeat(12, 0)
    image = alpha[..., None] * [220, 30, 30] + (1 - alpha[..., None]) * [30, 30, 220]
    trimap = np.where(alpha == 0, 0, np.where(alpha == 1, 255, 128)).astype(np.uint8)
    trimap[:, 3] = trimap[:, 8] = 128  # widen the unknown band by a pixel on each side
    return np.round(image).astype(np.uint8), trimap, alpha


@pytest.mark.parametrize("method", [closed_form_alpha, knn_alpha])
def test_peers_recover_a_clean_ramp_and_keep_known_pixels(method):
    image, trimap, alpha = _composite()
    estimate = method(image, trimap)
    assert estimate.shape == (12, 12)
    assert (estimate[trimap == 0] == 0).all() and (estimate[trimap == 255] == 1).all()
    assert np.abs(estimate - alpha)[trimap == 128].mean() < 0.15


def test_peers_need_known_foreground_and_background():
    image, trimap, _ = _composite()
    with pytest.raises(ValueError, match="known foreground"):
        closed_form_alpha(image, np.where(trimap == 255, 128, trimap).astype(np.uint8))


def test_table_shows_the_mean_and_each_seed():
    run = {k: 0.0 for k in ("SAD", "Grad", "Conn", "SAD_whole", "Grad_whole", "Conn_whole")}
    first = dict(run, SAD=1.0, MSE=0.002, MSE_whole=0.001, seconds_per_image=0.5)
    second = dict(run, SAD=3.0, MSE=0.004, MSE_whole=0.001, seconds_per_image=0.5)
    table = format_table([{"method": "learned", "runs": [first, second], "wrong_object": "1 / 4"}])
    assert "| learned | 2.0000 (1.0000 / 3.0000) | 3.000 (2.000 / 4.000) |" in table
    assert table.rstrip().endswith("| 1 / 4 | 0.500 |")
    assert mean_over_seeds([first, second])["SAD"] == 2.0
