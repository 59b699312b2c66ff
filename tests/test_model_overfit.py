"""The tiny MQ-Former learns: it overfits one fixed batch, then predicts that batch's masks."""
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances
from helpers import TINY_CONFIG, config_from_file

VOCABULARY = ["red square", "blue bar"]


def fixed_batch(size=64):
    """One image: a red square and a blue bar on grey, with their masks and texts."""
    image = torch.full((3, size, size), 128, dtype=torch.uint8)
    masks = torch.zeros(2, size, size, dtype=torch.bool)
    masks[0, 8:32, 8:32] = True
    masks[1, 40:56, 10:58] = True
    image[:, masks[0]] = torch.tensor([230, 20, 20], dtype=torch.uint8)[:, None]  # RGB config
    image[:, masks[1]] = torch.tensor([20, 20, 230], dtype=torch.uint8)[:, None]
    instances = Instances((size, size))
    instances.gt_masks = BitMasks(masks)
    instances.gt_boxes = BitMasks(masks).get_bounding_boxes()
    instances.gt_text_ids = torch.tensor([0, 1])
    instances.gt_has_mask = torch.ones(2, dtype=torch.bool)
    instances.gt_has_box = torch.ones(2, dtype=torch.bool)
    return [{"image": image, "height": size, "width": size, "vocabulary": list(VOCABULARY),
             "instances": instances, "task": "instance"}], masks


def mask_iou(a, b):
    return (a & b).sum().item() / max((a | b).sum().item(), 1)


def test_tiny_model_overfits_one_batch_and_predicts_its_masks():
    torch.manual_seed(0)
    cfg = config_from_file(TINY_CONFIG, "MODEL.MQFORMER.LOSS.NUM_POINTS", 256, "INPUT.FORMAT", "RGB")
    model = build_model(cfg)
    batch, masks = fixed_batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    totals = []
    for _ in range(40):
        losses = model(batch)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert totals[-1] < 0.5 * totals[0], f"loss {totals[0]:.2f} -> {totals[-1]:.2f}"

    model.eval()
    with torch.no_grad():
        instances = model([{k: v for k, v in batch[0].items() if k != "instances"}])[0]["instances"]
    for class_id, gt_mask in enumerate(masks):
        of_class = instances[instances.pred_classes == class_id]
        assert len(of_class) > 0, f"no prediction for '{VOCABULARY[class_id]}'"
        best = of_class.pred_masks[of_class.scores.argmax()]
        assert mask_iou(best, gt_mask) > 0.5, f"'{VOCABULARY[class_id]}' mask IoU {mask_iou(best, gt_mask):.2f}"
