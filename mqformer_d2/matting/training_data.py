"""Training samples for the refinement: the matting split held in memory, each image with a few
trimaps of the two kinds the refinement meets at test time (drawn once, when loading):

- ground-truth trimaps: the transition region of the true alpha dilated by 1..8 pixels, as a user
  or an evaluation gives them;
- mask trimaps: the band of 2..12 pixels around a coarse binary mask, the object's alpha >= 0.5
  eroded or dilated by up to 2 pixels (as a segmentation model's mask is a little off), as the
  prompted pipeline makes them. Their "foreground" may hold pixels whose alpha is below 1 (holes,
  semi-transparent parts), which the refinement learns to correct.

A refinement on the closed-form prior also gets each trimap's closed-form alpha (pymatting),
computed here once per trimap in worker processes. Batches are random flips / quarter turns of
random (image, trimap) pairs, cropped around the unknown band.
"""
import functools
import logging
import multiprocessing
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .files import read_alpha, read_rgb
from .trimap import trimap_from_alpha, trimap_from_mask

logger = logging.getLogger(__name__)
TRIMAPS_PER_IMAGE = 2  # one ground-truth-like and one mask-like trimap


@dataclass
class MattingSample:
    """One training image: (H, W, 3) uint8 RGB, its (H, W) float32 alpha, trimaps (each (H, W)
    uint8) and, for the closed-form prior, their closed-form alphas (each (H, W) float32)."""

    image: np.ndarray
    alpha: np.ndarray
    trimaps: List[np.ndarray]
    priors: Optional[List[np.ndarray]] = None


def random_mask_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Trimap of a coarse mask: alpha >= 0.5, eroded / dilated by 0..2 px, band 2..12 px."""
    mask = (alpha >= 0.5).astype(np.uint8)
    shift = int(rng.integers(-2, 3))
    if shift:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(shift) + 1,) * 2)
        mask = cv2.dilate(mask, kernel) if shift > 0 else cv2.erode(mask, kernel)
    if not mask.any():
        mask = (alpha > 0).astype(np.uint8)
    return trimap_from_mask(mask, int(rng.integers(2, 13)))


def random_alpha_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Trimap of the true alpha, its transition dilated by 1..8 px, less where that would leave
    no foreground pixel (trimap-based matting needs some)."""
    dilation = int(rng.integers(1, 9))
    trimap = trimap_from_alpha(alpha, dilation)
    while dilation > 0 and not (trimap == 255).any():
        dilation -= 1
        trimap = trimap_from_alpha(alpha, dilation)
    return trimap


def training_trimaps(alpha: np.ndarray, rng: np.random.Generator) -> List[np.ndarray]:
    """A ground-truth-like and a mask-like trimap of one alpha matte."""
    return [random_alpha_trimap(alpha, rng), random_mask_trimap(alpha, rng)]


def _closed_form_priors(pair: Tuple[np.ndarray, List[np.ndarray]]) -> List[np.ndarray]:
    from .peers import closed_form_alpha

    image, trimaps = pair
    return [closed_form_alpha(image, trimap) for trimap in trimaps]


def load_samples(records: Sequence[dict], seed: int = 0, closed_form: bool = False,
                 workers: int = 2) -> List[MattingSample]:
    """Read the images and alpha mattes of dataset records (``file_name``, ``alpha_file_name``),
    draw their trimaps, and with ``closed_form`` compute the trimaps' closed-form alphas."""
    rng = np.random.default_rng(seed)
    samples = []
    for record in records:
        image = read_rgb(record["file_name"])
        alpha = read_alpha(record["alpha_file_name"], image.shape[:2])
        samples.append(MattingSample(image, alpha, training_trimaps(alpha, rng)))
    if closed_form:
        pairs = [(s.image, s.trimaps) for s in samples]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            priors = list(tqdm(pool.imap(_closed_form_priors, pairs, chunksize=8), total=len(pairs),
                               desc="closed-form priors", unit="img"))
        for sample, prior in zip(samples, priors):
            sample.priors = prior
    return samples


def _crop_origin(trimap: np.ndarray, crop: int, rng: np.random.Generator) -> Tuple[int, int]:
    """Top-left corner of a ``crop`` window centred (as far as the image allows) on a random
    unknown pixel: the unknown band is where the refinement has work to do."""
    ys, xs = np.nonzero(trimap == 128)
    k = int(rng.integers(len(ys))) if len(ys) else 0
    cy, cx = (ys[k], xs[k]) if len(ys) else (trimap.shape[0] // 2, trimap.shape[1] // 2)
    top = int(np.clip(cy - crop // 2, 0, trimap.shape[0] - crop))
    left = int(np.clip(cx - crop // 2, 0, trimap.shape[1] - crop))
    return top, left


def _transformed(arrays: Sequence[np.ndarray], rng: np.random.Generator, crop: int) -> List[np.ndarray]:
    """The same random flip, quarter turn (the shapes have no orientation) and crop around the
    unknown band (``arrays[2]`` is the trimap) of every array."""
    flip, turns = rng.random() < 0.5, int(rng.integers(4))
    arrays = [np.rot90(a[:, ::-1] if flip else a, turns) for a in arrays]
    if 0 < crop < min(arrays[0].shape[:2]):
        top, left = _crop_origin(arrays[2], crop, rng)
        arrays = [a[top:top + crop, left:left + crop] for a in arrays]
    return [np.ascontiguousarray(a) for a in arrays]


def random_batch(samples: Sequence[MattingSample], size: int, rng: np.random.Generator,
                 crop: int = 0) -> Tuple[torch.Tensor, ...]:
    """(images (B, 3, H, W) float in [0, 1], trimaps (B, H, W) uint8, alphas (B, H, W) float,
    priors (B, H, W) float or None); ``crop`` > 0: windows of crop x crop pixels around the
    unknown band (trimaps are made on the whole image, so a crop sees the band the whole image
    has)."""
    batch = []
    for index in rng.integers(len(samples), size=size):
        sample = samples[int(index)]
        k = int(rng.integers(len(sample.trimaps)))
        arrays = [sample.image, sample.alpha, sample.trimaps[k]]
        if sample.priors is not None:
            arrays.append(sample.priors[k])
        batch.append(_transformed(arrays, rng, crop))
    images = torch.from_numpy(np.stack([b[0] for b in batch])).permute(0, 3, 1, 2).float() / 255.0
    alphas = torch.from_numpy(np.stack([b[1] for b in batch]))
    trimaps = torch.from_numpy(np.stack([b[2] for b in batch]))
    priors = torch.from_numpy(np.stack([b[3] for b in batch])) if len(batch[0]) > 3 else None
    return images, trimaps, alphas, priors
