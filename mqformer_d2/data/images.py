"""Images in, explicitly: files read with 16-bit data scaled to 8 bits, and arrays given to the
predictor checked to be (H, W, 3) uint8 (16-bit and grayscale arrays converted, others refused).

detectron2's `read_image` converts a 16-bit grayscale PNG with PIL's `convert("RGB")`, which clips
every value above 255 (a 16-bit image becomes nearly all white) instead of scaling it. A file
that cannot be decoded (truncated, not an image) raises `ImageReadError` naming it: PIL's own
errors ("image file is truncated") do not, and reach the user through a data-loader worker.
"""
import logging
from contextlib import contextmanager
from typing import Iterator, Tuple

import numpy as np
from detectron2.data import detection_utils as utils
from detectron2.data.transforms import ResizeShortestEdge
from detectron2.utils.file_io import PathManager
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

# PIL modes of 16-bit (and 32-bit integer) single-channel images: values up to 65535.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_SIXTEEN_BIT_SCALE = 65535 / 255


class ImageReadError(OSError):
    """An image file that exists but cannot be decoded; the message names it."""


@contextmanager
def naming_the_file(file_name: str) -> Iterator[None]:
    """Re-raise a decoding error of `file_name` (PIL's OSError, SyntaxError or ValueError, its
    decompression-bomb error) as an ImageReadError naming the file; a missing file stays a
    FileNotFoundError (whose message names it already)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read image file {file_name}: {e}") from e


def read_image(file_name: str, format: str) -> np.ndarray:
    """detectron2's `read_image(file_name, format)` (EXIF orientation applied), except that a 16-bit
    single-channel image is scaled to 0..255 (value / 257, rounded) rather than clipped, and that
    a file that cannot be decoded is an ImageReadError naming it.

    Returns:
        (H, W, C) uint8 in `format` ("RGB", "BGR", "L", ...).
    """
    with naming_the_file(file_name), PathManager.open(file_name, "rb") as f:
        image = ImageOps.exif_transpose(Image.open(f))
        if image.mode in _SIXTEEN_BIT_MODES:
            image = Image.fromarray(scale_to_uint8(np.asarray(image), 65535), mode="L")
        return utils.convert_PIL_to_numpy(image, format)


def read_label_map(file_name: str) -> np.ndarray:
    """A semantic label image as detectron2 reads it (values kept, 16-bit too), float64 (see the
    mapper); a file that cannot be decoded is an ImageReadError naming it."""
    with naming_the_file(file_name):
        return utils.read_image(file_name).astype(np.float64)


def resized_shape(height: int, width: int, short_edge: int, max_size: int, where: str = "image") -> Tuple[int, int]:
    """The (h, w) the test-time resize (ResizeShortestEdge to `short_edge`, long side at most
    `max_size`) gives an image of (height, width); a ValueError saying the size is too small
    when the image has no pixel or a side would shrink below one pixel (a 2x2000 image)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"{where} is {height}x{width} pixels: an image needs at least one pixel per side")
    if short_edge <= 0:
        return height, width
    new_height, new_width = ResizeShortestEdge.get_output_shape(height, width, short_edge, max_size)
    if min(new_height, new_width) < 1:
        raise ValueError(
            f"{where} is {height}x{width} pixels: too small (too elongated) for the test-time resize "
            f"(INPUT.MIN_SIZE_TEST {short_edge}, INPUT.MAX_SIZE_TEST {max_size}), which would make it "
            f"{new_height}x{new_width}; crop or pad it to a less elongated shape")
    return new_height, new_width


def scale_to_uint8(values: np.ndarray, maximum: float) -> np.ndarray:
    """Values in [0, maximum] -> uint8 in [0, 255], rounded (out-of-range values clipped)."""
    scaled = np.round(values.astype(np.float64) * (255.0 / maximum))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def as_uint8_bgr(image: np.ndarray, where: str = "image") -> np.ndarray:
    """The (H, W, 3) uint8 array of an image given to the predictor.

    Accepted: (H, W, 3) uint8 (returned as is, in the caller's channel order, BGR expected);
    uint16 (scaled by 1/257); (H, W) or (H, W, 1) grayscale (replicated to 3 channels). Refused with
    a ValueError / TypeError saying how to convert: float arrays (their range, [0, 1] or [0, 255],
    cannot be told from the values), other dtypes, 2 or 4 channels, non-arrays.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where} must be a numpy array (H, W, 3) uint8 in BGR order, as cv2.imread "
                        f"gives; got {type(image).__name__}")
    if image.dtype == np.uint16:
        logger.info("%s is 16-bit: scaled to 8 bits (value / 257)", where)
        image = scale_to_uint8(image, 65535)
    elif image.dtype != np.uint8:
        hint = (" For values in [0, 1] pass (image * 255).round().astype(np.uint8); for values in "
                "[0, 255] pass image.round().astype(np.uint8).") if np.issubdtype(image.dtype, np.floating) else ""
        raise ValueError(f"{where} has dtype {image.dtype}; expected uint8 (H, W, 3) BGR.{hint}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"{where}: expected an (H, W, 3) BGR image (or (H, W) grayscale), got shape "
                         f"{image.shape}; drop an alpha channel with image[:, :, :3]")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image
