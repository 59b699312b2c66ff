"""Training samples for the refinement: the matting split held in memory, augmented, with trimaps
of the two kinds the refinement meets at test time.

- ground-truth trimaps: the transition region of the true alpha dilated by 1..8 pixels, as a user
  or an evaluation gives them;
- mask trimaps: the band of 2..12 pixels around a coarse binary mask, the object's alpha >= 0.5
  eroded or dilated by up to 2 pixels (as a segmentation model's mask is a little off), as the
  prompted pipeline makes them. Their "foreground" may hold pixels whose alpha is below 1 (holes,
  semi-transparent parts), which the refinement learns to correct.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch

from .files import read_alpha, read_rgb
from .trimap import trimap_from_alpha, trimap_from_mask

MASK_TRIMAP_PROBABILITY = 0.5


@dataclass
class MattingSample:
    """One training image: (H, W, 3) uint8 RGB and its (H, W) float32 alpha."""

    image: np.ndarray
    alpha: np.ndarray


def load_samples(records: Sequence[dict]) -> List[MattingSample]:
    """Read the images and alpha mattes of dataset records (``file_name``, ``alpha_file_name``)."""
    samples = []
    for record in records:
        image = read_rgb(record["file_name"])
        samples.append(MattingSample(image, read_alpha(record["alpha_file_name"], image.shape[:2])))
    return samples


def _augment(sample: MattingSample, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A random flip and quarter turn of the image and alpha (the shapes have no orientation)."""
    image, alpha = sample.image, sample.alpha
    if rng.random() < 0.5:
        image, alpha = image[:, ::-1], alpha[:, ::-1]
    turns = int(rng.integers(4))
    return np.ascontiguousarray(np.rot90(image, turns)), np.ascontiguousarray(np.rot90(alpha, turns))


def random_mask_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Trimap of a coarse mask: alpha >= 0.5, eroded / dilated by 0..2 px, band 2..12 px."""
    mask = (alpha >= 0.5).astype(np.uint8)
    shift = int(rng.integers(-2, 3))
    if shift:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(shift) + 1,) * 2)
        mask = cv2.dilate(mask, kernel) if shift > 0 else cv2.erode(mask, kernel)
    return trimap_from_mask(mask, int(rng.integers(2, 13)))


def random_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mask trimap with probability MASK_TRIMAP_PROBABILITY, else a ground-truth one."""
    if rng.random() < MASK_TRIMAP_PROBABILITY:
        return random_mask_trimap(alpha, rng)
    return trimap_from_alpha(alpha, int(rng.integers(1, 9)))


def random_batch(samples: Sequence[MattingSample], size: int, rng: np.random.Generator):
    """(images (B, 3, H, W) float in [0, 1], trimaps (B, H, W) uint8, alphas (B, H, W) float)."""
    images, trimaps, alphas = [], [], []
    for index in rng.integers(len(samples), size=size):
        image, alpha = _augment(samples[int(index)], rng)
        images.append(image)
        alphas.append(alpha)
        trimaps.append(random_trimap(alpha, rng))
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return images, torch.from_numpy(np.stack(trimaps)), torch.from_numpy(np.stack(alphas))
