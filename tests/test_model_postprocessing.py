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
