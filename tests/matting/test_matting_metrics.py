"""SAD, MSE, Grad and Conn against values computed by hand on tiny arrays."""
import math

import numpy as np
import pytest

from mqformer_d2.matting.metrics import (
    connectivity_error,
    connectivity_levels,
    gaussian_derivative_kernel,
    gradient_error,
    matting_errors,
    mse,
    sad,
)

PRED = np.array([[0.0, 0.5], [1.0, 1.0]])
GT = np.array([[0.0, 1.0], [0.5, 1.0]])
ALL = np.ones((2, 2), bool)
ONE = np.array([[False, True], [False, False]])


def test_sad_is_the_sum_of_absolute_differences_in_thousands():
    assert sad(PRED, GT, ALL) == pytest.approx(1.0 / 1000)  # 0 + 0.5 + 0.5 + 0
    assert sad(PRED, GT, ONE) == pytest.approx(0.5 / 1000)


def test_mse_is_the_mean_over_the_region():
    assert mse(PRED, GT, ALL) == pytest.approx(0.5 / 4)  # (0.25 + 0.25) / 4
    assert mse(PRED, GT, ONE) == pytest.approx(0.25)
    assert mse(PRED, GT, np.zeros((2, 2), bool)) == 0.0


def _gauss(x, sigma=1.4):
    return math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))


def test_gradient_kernel_is_the_unit_norm_gaussian_derivative_of_sigma_1_4():
    kernel = gaussian_derivative_kernel()
    assert kernel.shape == (9, 9)  # half size ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) 1.4 0.01))) = 4
    assert np.sqrt((kernel ** 2).sum()) == pytest.approx(1.0)
    assert kernel[4, 4] == 0.0 and kernel[4, 5] == pytest.approx(-kernel[4, 3])


def test_gradient_error_of_an_impulse_by_hand():
    """An impulse's gradient magnitude beside it is |G(0) G'(1)| / norm, with
    norm^2 = sum_y G(y)^2 * sum_x G'(x)^2 over offsets -4..4."""
    gt = np.zeros((11, 11))
    gt[5, 5] = 1.0
    region = np.zeros((11, 11), bool)
    region[5, 6] = True
    derivative = [-x / 1.4 ** 2 * _gauss(x) for x in range(-4, 5)]
    norm = math.sqrt(sum(_gauss(y) ** 2 for y in range(-4, 5)) * sum(d * d for d in derivative))
    expected = (_gauss(0) * derivative[5] / norm) ** 2 / 1000
    assert gradient_error(np.zeros((11, 11)), gt, region) == pytest.approx(expected)
    assert gradient_error(gt, gt, np.ones((11, 11), bool)) == 0.0
    # constant mattes have no gradient, whatever their value
    assert gradient_error(np.full((5, 5), 0.3), np.ones((5, 5)), np.ones((5, 5), bool)) == pytest.approx(0.0, abs=1e-12)


def test_connectivity_of_a_pixel_cut_off_from_the_largest_component():
    """gt [1 1 0 1], pred [1 1 1 1]: pixels 2 and 3 are outside the largest component from t = 0.1
    (level 0), pixels 0 and 1 never leave it (level 1). phi_pred = 1 1 0 0 (d = 1 >= 0.15 for
    pixels 2, 3), phi_gt = 1 1 1 0: one pixel differs by 1."""
    gt = np.array([[1.0, 1.0, 0.0, 1.0]])
    pred = np.ones((1, 4))
    np.testing.assert_array_equal(connectivity_levels(pred, gt), [[1, 1, 0, 0]])
    assert connectivity_error(pred, gt, np.ones((1, 4), bool)) == pytest.approx(1 / 1000)


def test_connectivity_below_theta_counts_as_connected():
    """gt [1 0.5], pred [1 0.05]: pixel 1 leaves at t = 0.1 (level 0); d_pred = 0.05 < 0.15 so
    phi_pred = 1, d_gt = 0.5 so phi_gt = 0.5."""
    gt = np.array([[1.0, 0.5]])
    pred = np.array([[1.0, 0.05]])
    assert connectivity_error(pred, gt, np.ones((1, 2), bool)) == pytest.approx(0.5 / 1000)
    assert connectivity_error(gt, gt, np.ones((1, 2), bool)) == 0.0


def test_connectivity_thresholds_are_exact_decimals():
    """0.3 must count as >= the threshold 0.3 (not 0.30000000000000004)."""
    alpha = np.array([[0.3]])
    assert connectivity_levels(alpha, alpha)[0, 0] == pytest.approx(0.3)


def test_matting_errors_over_the_unknown_region_and_the_whole_image():
    trimap = np.array([[0, 128], [255, 255]], np.uint8)
    errors = matting_errors(PRED, GT, trimap)
    assert set(errors) == {f"{m}{r}" for m in ("SAD", "MSE", "Grad", "Conn") for r in ("", "_whole")}
    assert errors["SAD"] == pytest.approx(0.5 / 1000)
    assert errors["SAD_whole"] == pytest.approx(1.0 / 1000)
    assert errors["MSE"] == pytest.approx(0.25) and errors["MSE_whole"] == pytest.approx(0.125)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same"):
        sad(np.zeros((2, 2)), np.zeros((2, 3)), np.ones((2, 3), bool))
