"""`build_criterion(cfg)`: the training objective of MODEL.MQFORMER.LOSS."""
from .loss_weights import LossWeights
from .matcher import HungarianMatcher
from .set_criterion import SetCriterion


def build_criterion(cfg) -> SetCriterion:
    """The Hungarian matcher + set criterion; LOSS weights double as matching cost weights."""
    loss = cfg.MODEL.MQFORMER.LOSS
    weights = LossWeights(
        class_weight=loss.CLASS_WEIGHT, bbox_weight=loss.BOX_L1_WEIGHT, giou_weight=loss.GIOU_WEIGHT,
        mask_weight=loss.MASK_WEIGHT, dice_weight=loss.DICE_WEIGHT, focal_alpha=loss.FOCAL_ALPHA,
        focal_gamma=loss.FOCAL_GAMMA,
    )
    return SetCriterion(
        matcher=HungarianMatcher(weights=weights, num_points=loss.NUM_POINTS), weights=weights,
        num_points=loss.NUM_POINTS, oversample_ratio=loss.OVERSAMPLE_RATIO, importance_sample_ratio=loss.IMPORTANCE_SAMPLE_RATIO,
        denoising=cfg.MODEL.MQFORMER.DENOISING.ENABLED,
    )
