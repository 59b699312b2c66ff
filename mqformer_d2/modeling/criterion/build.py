"""`build_criterion(cfg)`: the training objective of MODEL.MQFORMER.LOSS."""
from .matcher import HungarianMatcher
from .set_criterion import SetCriterion


def build_criterion(cfg) -> SetCriterion:
    """The Hungarian matcher + set criterion; LOSS weights double as matching cost weights."""
    loss = cfg.MODEL.MQFORMER.LOSS
    matcher = HungarianMatcher(
        cost_class=loss.CLASS_WEIGHT, cost_bbox=loss.BOX_L1_WEIGHT, cost_giou=loss.GIOU_WEIGHT,
        cost_mask=loss.MASK_WEIGHT, cost_dice=loss.DICE_WEIGHT, num_points=loss.NUM_POINTS,
        focal_alpha=loss.FOCAL_ALPHA, focal_gamma=loss.FOCAL_GAMMA,
    )
    return SetCriterion(
        matcher=matcher, class_weight=loss.CLASS_WEIGHT, bbox_weight=loss.BOX_L1_WEIGHT,
        giou_weight=loss.GIOU_WEIGHT, mask_weight=loss.MASK_WEIGHT, dice_weight=loss.DICE_WEIGHT,
        focal_alpha=loss.FOCAL_ALPHA, focal_gamma=loss.FOCAL_GAMMA, num_points=loss.NUM_POINTS,
        oversample_ratio=loss.OVERSAMPLE_RATIO, importance_sample_ratio=loss.IMPORTANCE_SAMPLE_RATIO,
        denoising=cfg.MODEL.MQFORMER.DENOISING.ENABLED,
    )
