"""Training of the refinement on the matting split: AdamW with a one-cycle schedule, a fixed
number of steps (stopped early when a wall-clock budget runs out) on crops around the unknown
band (cheaper than whole images, so more steps fit in CPU minutes), losses:

- L1 between predicted and true alpha over the trimap's unknown pixels (mean over them);
- L1 over the known pixels (mean), which matters for mask trimaps whose "foreground" is not all 1;
- L1 between the Sobel gradients of the two mattes over the unknown pixels (sharp transitions).

Writes ``refiner_final.pth`` (``{"state_dict", "config"}``, loadable with
``torch.load(weights_only=True)``) and ``training.json`` (steps, losses, seconds).
"""
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .refiner import MattingRefiner
from .training_data import load_samples, random_batch

logger = logging.getLogger(__name__)
WEIGHTS_NAME = "refiner_final.pth"


@dataclass
class TrainingSettings:
    """The refinement's training recipe."""

    steps: int = 1200
    batch_size: int = 16
    crop_size: int = 64  # training windows around the unknown band (0 = whole images)
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    context_blocks: int = 2
    prior: str = "closed_form"  # the alpha the network corrects: "closed_form" or "colour" (see refiner)
    seed: int = 0
    max_minutes: float = 9.0  # stop early (and say so) when training would take longer
    known_weight: float = 0.5
    gradient_weight: float = 1.0


def _sobel(alpha: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) Sobel x / y gradients of (B, H, W) mattes."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=alpha.device) / 4
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    return F.conv2d(alpha.unsqueeze(1), kernels, padding=1)


def matting_losses(pred: torch.Tensor, gt: torch.Tensor, trimap: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The three losses of the module docstring for (B, H, W) mattes and trimaps."""
    unknown = (trimap == 128).float()
    known = 1.0 - unknown
    error = (pred - gt).abs()
    gradient = (_sobel(pred) - _sobel(gt)).abs().sum(1)
    return {"l1_unknown": (error * unknown).sum() / unknown.sum().clamp(min=1),
            "l1_known": (error * known).sum() / known.sum().clamp(min=1),
            "gradient": (gradient * unknown).sum() / unknown.sum().clamp(min=1)}


def train_refiner(records: Sequence[dict], output_dir: str, settings: TrainingSettings) -> str:
    """Train on the dataset ``records`` (with ``file_name`` and ``alpha_file_name``); return the
    weights file written into ``output_dir`` (which must not hold one already)."""
    weights = os.path.join(output_dir, WEIGHTS_NAME)
    if os.path.exists(weights):
        raise FileExistsError(f"{weights} exists; train into a new folder")
    os.makedirs(output_dir, exist_ok=True)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    start = time.perf_counter()  # the budget covers the data preparation too
    samples = load_samples(records, settings.seed, closed_form=settings.prior == "closed_form")
    logger.info("refiner training data ready (%d images) in %.0f s", len(samples), time.perf_counter() - start)
    model = MattingRefiner(settings.width, settings.context_blocks, settings.prior)
    optimizer = torch.optim.AdamW(model.parameters(), settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.learning_rate,
                                                   total_steps=settings.steps, pct_start=0.05)
    log = []
    model.train()
    for step in range(settings.steps):
        images, trimaps, alphas, priors = random_batch(samples, settings.batch_size, rng, settings.crop_size)
        losses = matting_losses(model(images, trimaps, priors), alphas, trimaps)
        total = (losses["l1_unknown"] + settings.known_weight * losses["l1_known"]
                 + settings.gradient_weight * losses["gradient"])
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        schedule.step()
        elapsed = time.perf_counter() - start
        if step % 50 == 0 or step == settings.steps - 1:
            log.append({"step": step, "seconds": round(elapsed, 1), "loss": total.item(),
                        **{k: v.item() for k, v in losses.items()}})
            logger.info("refiner step %d/%d  loss %.4f  (%.0f s)", step, settings.steps, total.item(), elapsed)
        if elapsed > settings.max_minutes * 60:
            logger.warning("refiner training stopped at step %d of %d: the %.1f-minute budget ran out",
                           step + 1, settings.steps, settings.max_minutes)
            break
    model.eval()
    torch.save({"state_dict": model.state_dict(), "config": model.config()}, weights)
    with open(os.path.join(output_dir, "training.json"), "w", encoding="utf-8") as f:
        json.dump({"settings": asdict(settings), "steps_done": step + 1, "images": len(samples),
                   "seconds": round(time.perf_counter() - start, 1), "log": log}, f, indent=1)
    return weights
