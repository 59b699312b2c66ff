"""Trimaps from masks and alphas, and reading alpha mattes / trimaps with clear errors."""
import cv2
import numpy as np
import pytest

from mqformer_d2.matting.files import read_alpha, read_trimap
from mqformer_d2.matting.trimap import clamp_known, trimap_from_alpha, trimap_from_mask, unknown_region


def test_trimap_from_mask_has_a_band_on_both_sides_of_the_boundary():
    mask = np.zeros((9, 9), bool)
    mask[3:6, 3:6] = True  # a 3x3 square
    trimap = trimap_from_mask(mask, band=1)  # radius-1 disk = the 4-neighbourhood
    assert (trimap == 255).sum() == 1  # the eroded square: its centre
    assert (trimap == 128).sum() == 9 + 12 - 1  # the square grown by one pixel on each side, less the centre
    assert (trimap == 0).sum() == 81 - 21
    assert trimap[4, 4] == 255 and trimap[0, 0] == 0 and trimap[3, 3] == 128
    with pytest.raises(ValueError, match="at least 1"):
        trimap_from_mask(mask, band=0)


def test_trimap_from_alpha_marks_the_transition_and_dilates_it():
    alpha = np.zeros((1, 7), np.float32)
    alpha[0, 3] = 0.5
    alpha[0, 4:] = 1.0
    np.testing.assert_array_equal(trimap_from_alpha(alpha, 0), [[0, 0, 0, 128, 255, 255, 255]])
    np.testing.assert_array_equal(trimap_from_alpha(alpha, 1), [[0, 0, 128, 128, 128, 255, 255]])


def test_unknown_region_errors_name_the_trimap():
    with pytest.raises(ValueError, match="my.png.*no unknown"):
        unknown_region(np.array([[0, 255]], np.uint8), where="my.png")
    with pytest.raises(ValueError, match="found also \\[7\\]"):
        unknown_region(np.array([[0, 7, 128]], np.uint8))


def test_clamp_known_sets_known_pixels_only():
    alpha = np.full((1, 3), 0.4, np.float32)
    np.testing.assert_allclose(clamp_known(alpha, np.array([[0, 128, 255]], np.uint8)), [[0, 0.4, 1]])


def test_read_alpha_scales_8_and_16_bit(tmp_path):
    path8, path16 = str(tmp_path / "a8.png"), str(tmp_path / "a16.png")
    cv2.imwrite(path8, np.array([[0, 255, 51]], np.uint8))
    cv2.imwrite(path16, np.array([[0, 65535, 13107]], np.uint16))
    np.testing.assert_allclose(read_alpha(path8, (1, 3)), [[0, 1, 0.2]], atol=1e-6)
    np.testing.assert_allclose(read_alpha(path16), [[0, 1, 0.2]], atol=1e-6)


def test_read_alpha_refuses_wrong_size_channels_and_depth(tmp_path):
    gray = str(tmp_path / "gray.png")
    cv2.imwrite(gray, np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError, match="gray.png is 6x4 .* its image is 5x4"):
        read_alpha(gray, (4, 5))
    rgb = str(tmp_path / "rgb.png")
    cv2.imwrite(rgb, np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="rgb.png has 3 channels"):
        read_alpha(rgb)
    floats = str(tmp_path / "float.tiff")
    cv2.imwrite(floats, np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="float.tiff has float32 pixels.*8-bit"):
        read_alpha(floats)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_alpha(str(tmp_path / "missing.png"))


def test_read_trimap_refuses_a_trimap_without_unknown_pixels(tmp_path):
    path = str(tmp_path / "trimap.png")
    cv2.imwrite(path, np.array([[0, 255]], np.uint8))
    with pytest.raises(ValueError, match="trimap.png.*no unknown"):
        read_trimap(path)


def test_a_mask_thinner_than_the_band_keeps_its_core_as_foreground():
    mask = np.zeros((20, 20), bool)
    mask[8:12, 5:15] = True  # 4 pixels thick, band 5
    trimap = trimap_from_mask(mask, band=5)
    assert (trimap == 255).any() and (trimap[mask] != 0).all()
    assert ((trimap == 255) <= mask).all()
