"""Post-processing that upsamples only what it keeps gives the same outputs as upsampling every
candidate mask at once (the implementation before issue 13, kept here as the reference)."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling.postprocessing import sem_seg_postprocess

from mqformer_d2.modeling.meta_arch import postprocessing as post

PADDED, IMAGE, OUTPUT = (16, 20), (14, 18), (37, 45)
NUM_QUERIES, NUM_TEXTS = 12, 5


def _resize_all(maps):
    """The reference: every map at once, in float32, to the padded size, cropped, to the output size."""
    upsampled = F.interpolate(maps[None], size=PADDED, mode="bilinear", align_corners=False)[0]
    return sem_seg_postprocess(upsampled, IMAGE, *OUTPUT)


def reference_instances(logits, mask_logits, max_detections, threshold):
    """(masks, scores, classes, query) of the reference; rescoring by the mean mask probability."""
    probabilities = logits.sigmoid().flatten()
    class_scores, flat_index = probabilities.topk(min(max_detections, probabilities.numel()))
    query, labels = flat_index // NUM_TEXTS, flat_index % NUM_TEXTS
    masks = _resize_all(mask_logits[query])
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / binary.flatten(1).sum(1).clamp(min=1)
    scores = class_scores * mask_scores
    keep = scores > threshold
    return binary[keep], scores[keep], labels[keep], query[keep]


def reference_panoptic_owner(logits, mask_logits, threshold):
    scores, _ = logits.sigmoid().max(-1)
    keep = scores > threshold
    probabilities = _resize_all(mask_logits[keep]).sigmoid()
    return (scores[keep][:, None, None] * probabilities).argmax(0), probabilities >= 0.5


@pytest.fixture(params=[0, 1, 2])
def outputs(request):
    generator = torch.Generator().manual_seed(request.param)
    logits = torch.randn(NUM_QUERIES, NUM_TEXTS, generator=generator) * 2
    blobs = torch.randn(1, NUM_QUERIES, 3, 3, generator=generator) * 4  # smooth masks, like real ones
    mask_logits = F.interpolate(blobs, size=(PADDED[0] // 2, PADDED[1] // 2), mode="bilinear")[0]
    boxes = torch.rand(NUM_QUERIES, 4, generator=generator) * 0.5 + 0.25
    return logits, mask_logits, boxes


@pytest.fixture(params=[1 << 30, 2 * OUTPUT[0] * OUTPUT[1]], ids=["one-chunk", "chunks-of-2"])
def chunk_pixels(request, monkeypatch):
    monkeypatch.setattr(post, "CHUNK_PIXELS", request.param, raising=False)


RESIZE = post.ResizeSpec(PADDED, IMAGE, OUTPUT)


@pytest.mark.parametrize("max_detections,threshold", [(20, 0.2), (60, 0.0), (5, 0.5)])
def test_instances_are_unchanged(outputs, chunk_pixels, max_detections, threshold):
    logits, mask_logits, boxes = outputs
    masks, scores, classes, _ = reference_instances(logits, mask_logits, max_detections, threshold)
    result = post.instance_inference(logits, mask_logits, boxes, RESIZE, max_detections, threshold)
    assert len(result) == len(scores) > 0
    assert torch.equal(result.pred_masks, masks) and torch.equal(result.pred_classes, classes)
    assert torch.allclose(result.scores, scores, rtol=1e-6, atol=0)
    assert result.pred_masks.dtype == torch.bool and result.image_size == OUTPUT


def test_semantic_is_unchanged(outputs, chunk_pixels):
    logits, mask_logits, _ = outputs
    expected = _resize_all(torch.einsum("qt,qhw->thw", logits.sigmoid(), mask_logits.sigmoid()))
    assert torch.allclose(post.semantic_inference(logits, mask_logits, RESIZE), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_panoptic_is_unchanged(outputs, chunk_pixels, threshold):
    logits, mask_logits, _ = outputs
    owner, original = reference_panoptic_owner(logits, mask_logits, threshold)
    panoptic, segments = post.panoptic_inference(logits, mask_logits, RESIZE, [True, False, True, False, True],
                                                 threshold, 0.3)
    assert segments
    kept = torch.nonzero(logits.sigmoid().max(-1).values > threshold).flatten().tolist()
    expected = _reference_panoptic_ids(logits, owner, original, threshold, kept)
    assert torch.equal(panoptic, expected)


def _reference_panoptic_ids(logits, owner, original, threshold, kept):
    """The reference's segment painting (overlap 0.3, texts 1 and 3 are stuff)."""
    scores, labels = logits.sigmoid().max(-1)
    panoptic = torch.zeros(OUTPUT, dtype=torch.int32)
    stuff, count = {}, 0
    for k, query in enumerate(kept):
        label = int(labels[query])
        owned, mask = owner == k, original[k]
        region = owned & mask
        if int(mask.sum()) == 0 or not bool(region.any()) or int(owned.sum()) / int(mask.sum()) < 0.3:
            continue
        if label in (1, 3) and label in stuff:
            panoptic[region] = stuff[label]
            continue
        count += 1
        panoptic[region] = count
        if label in (1, 3):
            stuff[label] = count
    return panoptic


def test_referring_is_unchanged(outputs, chunk_pixels):
    logits, mask_logits, _ = outputs
    scores, query = logits.sigmoid().max(0)
    result = post.referring_inference(logits, mask_logits, [f"t{i}" for i in range(NUM_TEXTS)], RESIZE)
    assert torch.equal(result["masks"], _resize_all(mask_logits[query]) > 0)
    assert torch.equal(result["scores"], scores)


def test_half_precision_masks_stay_half_until_thresholded(outputs):
    logits, mask_logits, boxes = outputs
    result = post.instance_inference(logits, mask_logits.half(), boxes, RESIZE, 20, 0.2)
    assert result.pred_masks.dtype == torch.bool and len(result) > 0


def test_panoptic_with_an_empty_vocabulary_is_a_clear_error(outputs):
    logits, mask_logits, _ = outputs
    with pytest.raises(ValueError, match="prompt"):
        post.panoptic_inference(logits[:, :0], mask_logits, RESIZE, [], 0.5, 0.8)
