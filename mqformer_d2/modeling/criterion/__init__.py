"""The training objective (paper eq. 1), apart from the model that it trains:

* loss_targets.py: the mapper's `Instances` -> one target dict per image (its docstring gives the
  format), checked and moved to the predictions' device once per batch;
* loss_weights.py: `LossWeights`, the loss (and matching cost) weights and focal parameters;
* matcher.py: `HungarianMatcher`, one-to-one assignment of all queries to the targets;
* losses.py: the loss terms (focal class, L1 + GIoU box, BCE + dice mask) over matched pairs;
* set_criterion.py: `SetCriterion`, which matches every prediction set and weighs its losses;
* build.py: `build_criterion(cfg)` from MODEL.MQFORMER.LOSS.
"""
from .build import build_criterion
from .loss_targets import batch_targets, instances_to_targets
from .loss_weights import LossWeights
from .matcher import HungarianMatcher
from .set_criterion import SetCriterion

__all__ = ["HungarianMatcher", "LossWeights", "SetCriterion", "batch_targets", "build_criterion", "instances_to_targets"]
