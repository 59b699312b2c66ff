"""The tiny MQ-Former learns: it overfits one fixed batch, then predicts that batch's masks."""
import torch
from detectron2.modeling import build_model
from helpers import OVERFIT_VOCABULARY, TINY_CONFIG, config_from_file, fixed_batch, mask_iou


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
        assert len(of_class) > 0, f"no prediction for '{OVERFIT_VOCABULARY[class_id]}'"
        best = of_class.pred_masks[of_class.scores.argmax()]
        assert mask_iou(best, gt_mask) > 0.5, f"'{OVERFIT_VOCABULARY[class_id]}' mask IoU {mask_iou(best, gt_mask):.2f}"
