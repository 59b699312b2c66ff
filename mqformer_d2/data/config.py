"""Config keys of the data pipeline (augmentation, vocabulary sampling, multi-dataset sampling)."""
from detectron2.config import CfgNode as CN


def add_data_config(cfg: CN) -> None:
    """Add the data keys to `cfg` (Detectron2's own INPUT/DATASETS/DATALOADER keys are kept)."""
    # Large-scale jitter for training: resize by a random scale of IMAGE_SIZE, then crop/pad to a
    # square of IMAGE_SIZE (detectron2's ResizeScale + FixedSizeCrop).
    cfg.INPUT.IMAGE_SIZE = 1024
    cfg.INPUT.MIN_SCALE = 0.1  # smallest random scale of IMAGE_SIZE
    cfg.INPUT.MAX_SCALE = 2.0  # largest random scale of IMAGE_SIZE
    # Negative texts (other class names of the image's dataset) added to each training image's
    # vocabulary besides its positive texts.
    cfg.INPUT.NUM_NEGATIVE_TEXTS = 20
    # One sampling weight per DATASETS.TRAIN entry; images are drawn dataset-first with these
    # relative probabilities. Empty: proportional to dataset sizes (plain concatenation).
    cfg.DATASETS.TRAIN_SAMPLING_RATIOS = []
    # What to do with bad annotations of a training dataset (degenerate box, out-of-image box,
    # empty polygon, referring annotation without sentence, unknown category), found before
    # training: "warn" logs one line per dataset and reason and handles them as docs/usage.md
    # says; "error" raises instead. A training dataset with no usable target is always an error.
    cfg.DATALOADER.BAD_ANNOTATIONS = "warn"
