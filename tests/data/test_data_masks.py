"""The package's one mask encoder, segmentation decoder and tight-box helper (mqformer_d2.data.masks,
layers.box_utils.masks_to_pixel_boxes), and the callers that must agree with them."""
import json

import numpy as np
import pytest
import torch

from mqformer_d2.data.masks import decode_segmentation, encode_mask, mask_to_box, rle_xywh_box
from mqformer_d2.evaluation import annotation_mask
from mqformer_d2.layers import masks_to_normalized_boxes, masks_to_pixel_boxes
from mqformer_d2.synthetic import box_iou_of_mask

H, W = 7, 9


def random_masks(count=20, seed=0):
    """(count, H, W) bool masks of mixed density, the first one empty and the last one full."""
    rng = np.random.default_rng(seed)
    masks = rng.random((count, H, W)) < rng.random((count, 1, 1))
    masks[0] = False
    masks[-1] = True
    return masks


def test_encode_decode_round_trip_is_exact_and_json_serialisable():
    for mask in random_masks():
        rle = encode_mask(mask)
        assert isinstance(rle["counts"], str) and rle["size"] == [H, W]
        loaded = json.loads(json.dumps(rle))  # what a json file gives back
        decoded = decode_segmentation(loaded, H, W)
        assert decoded.dtype == np.uint8 and decoded.shape == (H, W)
        np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_str_bytes_and_uncompressed_counts_decode_to_the_same_mask():
    mask = random_masks()[5]
    rle = encode_mask(mask)
    as_bytes = dict(rle, counts=rle["counts"].encode("ascii"))
    # Uncompressed counts: alternating runs of 0s and 1s in column-major order, starting with 0s.
    flat = mask.flatten(order="F").astype(np.int64)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    uncompressed = {"size": [H, W], "counts": ([0] if flat[0] else []) + runs}
    for segmentation in (rle, as_bytes, uncompressed):
        np.testing.assert_array_equal(decode_segmentation(segmentation, H, W).astype(bool), mask)
        np.testing.assert_array_equal(annotation_mask({"segmentation": segmentation}, H, W, "test"), mask)


def test_polygons_decode_to_their_pixels_and_merge():
    square = [1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]  # x0 y0 x1 y1 ...: columns 1..4, rows 1..3
    other = [6.0, 5.0, 8.0, 5.0, 8.0, 7.0, 6.0, 7.0]
    mask = decode_segmentation([square, other], H, W).astype(bool)
    assert mask[1:4, 1:5].all() and mask[5:7, 6:8].all() and mask.sum() == 12 + 4
    np.testing.assert_array_equal(annotation_mask({"segmentation": [square, other]}, H, W, "test"), mask)


def test_invalid_segmentations_are_refused():
    rle = encode_mask(random_masks()[3])
    with pytest.raises(ValueError, match="invalid RLE: size"):
        decode_segmentation(rle, H + 1, W)
    with pytest.raises(ValueError, match="invalid RLE: its counts sum"):
        decode_segmentation({"size": [H, W], "counts": [3, 4]}, H, W)
    with pytest.raises(TypeError, match="unsupported segmentation"):
        decode_segmentation("counts", H, W)
    with pytest.raises(ValueError, match="invalid polygon 1: 4 coordinates"):  # pycocotools: a box
        decode_segmentation([[1, 1, 5, 1, 5, 5], [1, 1, 5, 5]], H, W)
    with pytest.raises(ValueError, match="invalid polygon 0: 7 coordinates"):
        decode_segmentation([[1, 1, 5, 1, 5, 5, 2]], H, W)
    with pytest.raises(ValueError, match="^image 4: invalid polygon 0"):
        annotation_mask({"segmentation": [[1, 1, 5, 5]]}, H, W, "image 4")
    with pytest.raises(ValueError, match="^image 3: invalid RLE"):  # the evaluators name the image
        annotation_mask({"segmentation": rle}, H, W + 1, "image 3")


def test_tight_boxes_of_the_one_helper_agree_with_pycocotools():
    masks = random_masks()
    pixel_boxes, non_empty = masks_to_pixel_boxes(torch.from_numpy(masks))
    assert pixel_boxes.dtype == torch.int64 and non_empty.tolist() == [bool(m.any()) for m in masks]
    for mask, box in zip(masks, pixel_boxes.tolist()):
        x, y, w, h = rle_xywh_box(encode_mask(mask))
        assert box == [x, y, x + w, y + h]  # zeros for the empty mask, as pycocotools' box
        tight = mask_to_box(mask)
        assert (tight is None) == (not mask.any())
        if tight is not None:
            assert tight.dtype == np.float32 and tight.tolist() == box
    assert mask_to_box(masks[-1]).tolist() == [0, 0, W, H]


def test_normalized_boxes_are_the_pixel_boxes_over_the_size():
    logits = torch.from_numpy(random_masks()).float() * 2 - 1  # positive where the mask is True
    boxes, non_empty = masks_to_normalized_boxes(logits)
    pixel_boxes, _ = masks_to_pixel_boxes(logits > 0)
    assert torch.equal(boxes, pixel_boxes / torch.tensor([W, H, W, H]))
    assert non_empty.tolist() == [bool(m.any()) for m in random_masks()]


def test_mask_quality_is_the_iou_of_its_tight_box():
    mask = np.zeros((H, W), bool)
    mask[2:5, 3:7] = True  # tight box (3, 2, 7, 5)
    assert box_iou_of_mask(mask, [3.0, 2.0, 7.0, 5.0]) == 1.0
    assert box_iou_of_mask(mask, [3.0, 2.0, 7.0, 8.0]) == pytest.approx(0.5)
    assert box_iou_of_mask(np.zeros((H, W), bool), [0.0, 0.0, 2.0, 2.0]) == 0.0
    assert box_iou_of_mask(mask[:, ::-1], [2.0, 2.0, 6.0, 5.0]) == 1.0  # a flipped view, not contiguous
