"""Smoke run of the installed stack: train one MSDeformAttn layer to undo a known spatial shift.

The target at each query position is the feature found 1.5 pixels to the right and 1 pixel down on
the finest level, so the layer must learn its sampling offsets (through the bilinear-sampling
gradient) and its value/output projections. Prints the loss before and after; exits non-zero if it
did not fall by at least 80%. Used by `make train` until the full model's training job exists.
"""
import argparse
import logging
import sys

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mqformer_d2.layers import MSDeformAttn

logger = logging.getLogger("smoke_train")


def shifted_problem(batch=4, channels=32, side=16, shift=(1.5, 1.0), seed=0):
    """Features of two levels (side^2 and (side/2)^2) and the target: the finest level shifted."""
    generator = torch.Generator().manual_seed(seed)
    fine = F.avg_pool2d(torch.randn(batch, channels, side + 4, side + 4, generator=generator), 3, 1)
    fine = fine[..., : side, : side].contiguous()
    coarse = F.avg_pool2d(fine, 2)
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centres = torch.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1).view(1, -1, 1, 2)
    # Target = bilinear read of the fine level at centre + shift (zero outside).
    grid = (centres.view(1, side, side, 2) + torch.tensor(shift) / side) * 2 - 1
    target = F.grid_sample(fine, grid.expand(batch, -1, -1, -1), align_corners=False)
    flatten = torch.cat([fine.flatten(2), coarse.flatten(2)], 2).transpose(1, 2)
    shapes = torch.tensor([[side, side], [side // 2, side // 2]])
    start_index = torch.tensor([0, side * side])
    reference = centres.expand(batch, -1, 2, -1)
    return flatten[:, : side * side], reference, flatten, shapes, start_index, target.flatten(2).transpose(1, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    query, reference, features, shapes, start_index, target = shifted_problem()
    layer = MSDeformAttn(d_model=32, n_levels=2, n_heads=4, n_points=4)
    optimizer = torch.optim.Adam(layer.parameters(), lr=3e-3)
    losses = []
    for _ in tqdm(range(args.steps), desc="smoke training (MSDeformAttn)"):
        loss = F.mse_loss(layer(query, reference, features, shapes, start_index), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    logger.info("loss: first step %.4f -> last step %.4f (%.0f%% lower)",
                losses[0], losses[-1], 100 * (1 - losses[-1] / losses[0]))
    return 0 if losses[-1] < 0.2 * losses[0] else 1


if __name__ == "__main__":
    sys.exit(main())
