"""Post-processing rules on hand-made predictions."""
import math

import torch

from mqformer_d2.modeling.meta_arch import postprocessing as post


def logit(p):
    return math.log(p / (1 - p))


def test_panoptic_keeps_a_query_that_owns_enough_of_its_mask_area():
    """Mask2Former's overlap rule: the ratio is (pixels the query owns) / (pixels of its mask), and
    only owned pixels inside its mask are painted. Query 0's mask is pixels 0-4; query 1 (surer)
    takes 0-2; query 0 still owns 3-4 and, as the least unlikely owner, 5-9: 7 / 5 >= 0.8."""
    probabilities = torch.full((2, 1, 10), 0.01)
    probabilities[0, 0, :5], probabilities[0, 0, 5:] = 0.9, 0.4
    probabilities[1, 0, :3] = 0.99
    mask_logits = torch.log(probabilities / (1 - probabilities))
    class_logits = torch.tensor([[logit(0.9), -9.0], [-9.0, logit(0.95)]])
    resize = post.ResizeSpec((1, 10), (1, 10), (1, 10))
    panoptic, segments = post.panoptic_inference(class_logits, mask_logits, resize, [True, True],
                                                 object_threshold=0.5, overlap_threshold=0.8)
    by_category = {s["category_id"]: s["id"] for s in segments}
    assert set(by_category) == {0, 1}
    assert panoptic[0].tolist() == [by_category[1]] * 3 + [by_category[0]] * 2 + [0] * 5


def test_panoptic_drops_a_query_that_owns_too_little():
    probabilities = torch.full((2, 1, 10), 0.01)
    probabilities[0, 0, :5] = 0.9
    probabilities[1, 0, :4] = 0.99  # takes 4 of query 0's 5 pixels: 1 / 5 < 0.8
    mask_logits = torch.log(probabilities / (1 - probabilities))
    class_logits = torch.tensor([[logit(0.9), -9.0], [-9.0, logit(0.95)]])
    resize = post.ResizeSpec((1, 10), (1, 10), (1, 10))
    _, segments = post.panoptic_inference(class_logits, mask_logits, resize, [True, True], 0.5, 0.8)
    assert [s["category_id"] for s in segments] == [1]


def test_class_temperature_sharpens_semantic_scores_over_several_texts():
    """One query, two texts at sigmoid 0.30 and 0.25: T = 0.06 makes the first clearly win
    (softmax(0.30 / 0.06, 0.25 / 0.06) = (0.70, 0.30)); T = 0 keeps the sigmoids."""
    class_logits = torch.tensor([[logit(0.30), logit(0.25)]])
    mask_logits = torch.zeros(1, 2, 2)  # mask probability 0.5 everywhere
    resize = post.ResizeSpec((2, 2), (2, 2), (2, 2))
    plain = post.semantic_inference(class_logits, mask_logits, resize)
    sharp = post.semantic_inference(class_logits, mask_logits, resize, temperature=0.06)
    assert torch.allclose(plain[:, 0, 0], torch.tensor([0.15, 0.125]))
    expected = torch.softmax(torch.tensor([0.30, 0.25]) / 0.06, 0) * 0.5
    assert torch.allclose(sharp[:, 0, 0], expected, atol=1e-5)


def test_class_temperature_leaves_a_single_text_alone():
    """With one text a softmax would make every query certain; the sigmoid stays."""
    class_logits = torch.tensor([[logit(0.2)], [logit(0.9)]])
    assert torch.allclose(post.sharpened_probabilities(class_logits, 0.06), class_logits.sigmoid())


def test_panoptic_temperature_labels_by_softmax_but_thresholds_the_sigmoid():
    """Query 0 scores 0.30 / 0.28: kept at threshold 0.25 by its sigmoid; its score becomes the
    softmax's 0.58. Query 1 (0.2 / 0.1) stays below the threshold either way."""
    class_logits = torch.tensor([[logit(0.30), logit(0.28)], [logit(0.2), logit(0.1)]])
    mask_logits = torch.full((2, 1, 4), -9.0)
    mask_logits[0, 0, :2] = 9.0
    mask_logits[1, 0, 2:] = 9.0
    resize = post.ResizeSpec((1, 4), (1, 4), (1, 4))
    _, segments = post.panoptic_inference(class_logits, mask_logits, resize, [True, True], 0.25, 0.8,
                                          temperature=0.06)
    assert [s["category_id"] for s in segments] == [0]
    expected = float(torch.softmax(torch.tensor([0.30, 0.28]) / 0.06, 0)[0])
    assert abs(segments[0]["score"] - expected) < 1e-5


def _semantic_case(num_texts=7, queries=5, size=(6, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(queries, num_texts, generator=g) * 2
    mask_logits = torch.randn(queries, *size, generator=g) * 3
    resize = post.ResizeSpec(size, (5, 7), (10, 13))  # padded -> unpadded -> a larger output
    return logits, mask_logits, resize


def _check_against_the_full_map(labels, scores, full):
    assert labels.dtype == torch.int64 and labels.shape == scores.shape == full.shape[1:]
    best, first = full.max(0)
    assert torch.allclose(scores, best, atol=1e-6)
    top2 = full.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-5  # pixels whose winner float rounding cannot change
    assert bool(clear.any()) and torch.equal(labels[clear], first[clear])


def test_semantic_labels_are_the_argmax_and_max_of_the_full_map(monkeypatch):
    logits, mask_logits, resize = _semantic_case()
    full = post.semantic_inference(logits, mask_logits, resize)
    monkeypatch.setattr(post, "CHUNK_PIXELS", 2 * 10 * 13)  # two texts per chunk: 4 chunks, the last one short
    _check_against_the_full_map(*post.semantic_labels(logits, mask_logits, resize), full)


def test_semantic_labels_keep_the_class_temperature(monkeypatch):
    logits, mask_logits, resize = _semantic_case(seed=1)
    monkeypatch.setattr(post, "CHUNK_PIXELS", 3 * 10 * 13)
    full = post.semantic_inference(logits, mask_logits, resize, temperature=0.06)
    plain = post.semantic_inference(logits, mask_logits, resize)
    labels, scores = post.semantic_labels(logits, mask_logits, resize, temperature=0.06)
    _check_against_the_full_map(labels, scores, full)
    assert not torch.allclose(scores, plain.max(0).values)  # the sharpening is applied across chunks


def test_semantic_labels_never_hold_a_texts_by_pixels_map(monkeypatch):
    """Every full-size map made is a chunk of at most CHUNK_PIXELS values, whatever the texts."""
    logits, mask_logits, resize = _semantic_case(num_texts=50)
    monkeypatch.setattr(post, "CHUNK_PIXELS", 4 * 10 * 13)
    sizes = []
    original = post.ResizeSpec.resize

    def recording(self, maps):
        output = original(self, maps)
        sizes.append(output.numel())
        return output

    monkeypatch.setattr(post.ResizeSpec, "resize", recording)
    labels, _ = post.semantic_labels(logits, mask_logits, resize)
    assert len(sizes) == 13 and max(sizes) <= 4 * 10 * 13 < 50 * 10 * 13
    assert int(labels.max()) < 50 and int(labels.min()) >= 0


def test_semantic_labels_without_texts_are_minus_one():
    _, mask_logits, resize = _semantic_case()
    labels, scores = post.semantic_labels(torch.zeros(5, 0), mask_logits, resize)
    assert labels.shape == (10, 13) and bool((labels == -1).all()) and not bool(scores.any())
