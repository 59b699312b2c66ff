"""Exemplar images in the model's input format: read (from a file or a BGR array), resized like the
model's test inputs, with the box or mask brought along."""
from typing import Optional, Tuple

import numpy as np
import torch
from detectron2.data import transforms as T

from ..data.images import as_uint8_bgr, read_image, resized_shape
from .inputs import Exemplar, make_exemplar


class ExemplarImages:
    """Turns (image, region) pairs into `Exemplar`s for a model config: INPUT.FORMAT channel order,
    the test-time resize (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), regions scaled alike. Images read
    from files are kept (one tensor per file), so exemplars of one file encode it once."""

    def __init__(self, cfg):
        self.format = cfg.INPUT.FORMAT
        self.min_size, self.max_size = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        self.resize = T.ResizeShortestEdge([self.min_size, self.min_size], self.max_size)
        self._files = {}

    def from_array(self, image_bgr: np.ndarray, where: str) -> Tuple[torch.Tensor, float, float]:
        """(3, h, w) uint8 model input of a BGR (H, W, 3) array, and the x and y scale factors."""
        image = as_uint8_bgr(image_bgr, where)
        if self.format == "RGB":
            image = image[:, :, ::-1]
        return self._resized(image, where)

    def from_file(self, file_name: str) -> Tuple[torch.Tensor, float, float]:
        """As `from_array` for an image file (read once; an unreadable file is an error naming it)."""
        if file_name not in self._files:
            self._files[file_name] = self._resized(read_image(file_name, self.format), file_name)
        return self._files[file_name]

    def forget_files(self) -> None:
        """Drop the images read from files so far (bounded memory over many files)."""
        self._files.clear()

    def _resized(self, image: np.ndarray, where: str) -> Tuple[torch.Tensor, float, float]:
        height, width = image.shape[:2]
        resized_shape(height, width, self.min_size, self.max_size, where)
        image = self.resize.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, tensor.shape[2] / width, tensor.shape[1] / height

    def exemplar(self, image, region, name: str, image_tensor: Optional[Tuple] = None) -> Exemplar:
        """An `Exemplar` of `image` (a file name or a BGR array) and `region` (xyxy box in the
        original image's pixels, or an (H, W) mask of the original image)."""
        if image_tensor is None:
            image_tensor = self.from_file(image) if isinstance(image, str) else self.from_array(image, name)
        tensor, scale_x, scale_y = image_tensor
        original = (round(tensor.shape[1] / scale_y), round(tensor.shape[2] / scale_x))
        region_array = np.asarray(region)
        if region_array.ndim == 2:
            if tuple(region_array.shape) != original:
                raise ValueError(f"{name}: mask of shape {region_array.shape} does not match its image ({original})")
            mask = torch.as_tensor(region_array.astype(np.float32))[None, None]
            mask = torch.nn.functional.interpolate(mask, size=tuple(tensor.shape[1:]), mode="nearest")[0, 0]
            return make_exemplar(tensor, mask > 0.5, name)
        make_exemplar(torch.zeros(3, *original, dtype=torch.uint8), region, name)  # checked in original pixels
        box = torch.as_tensor(region, dtype=torch.float32) * torch.tensor([scale_x, scale_y, scale_x, scale_y])
        return make_exemplar(tensor, box.clamp(min=0).minimum(
            torch.tensor([tensor.shape[2], tensor.shape[1]] * 2, dtype=torch.float32)), name)
