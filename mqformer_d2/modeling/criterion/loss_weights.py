"""`LossWeights`: the weights of the five loss terms and the focal-loss parameters, one object
handed to both the matcher and the criterion, so that matching costs and losses cannot drift apart."""
from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class LossWeights:
    """Mask DINO's defaults. The criterion weighs ``loss_ce``, ``loss_bbox``, ``loss_giou``,
    ``loss_mask``, ``loss_dice`` with them (every suffix alike); the matcher weighs the
    corresponding focal class, L1 box, GIoU box, point-BCE mask and point-dice mask costs.
    ``focal_alpha``, ``focal_gamma``: the sigmoid focal loss of the class loss and the class cost."""

    class_weight: float = 4.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def by_loss_name(self) -> Dict[str, float]:
        """Weight of each base loss name (the criterion's ``weight_dict``)."""
        return {"loss_ce": self.class_weight, "loss_bbox": self.bbox_weight, "loss_giou": self.giou_weight,
                "loss_mask": self.mask_weight, "loss_dice": self.dice_weight}
