"""`export_model`: a trained MQ-Former and a vocabulary -> an export folder (see `files`)."""
import logging
import os
import shutil
import tempfile
import traceback
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.data import transforms as T

from ..data.images import as_uint8_bgr
from ..modeling.meta_arch.vocabulary import check_vocabulary
from .files import GRAPH_FILES, ExportedVocabulary, ExportFiles
from .graph import ExportableMQFormer, pad_to_multiple

logger = logging.getLogger(__name__)

ONNX_OPSET = 18  # GridSample (deformable attention's sampling) is standard from opset 16
INPUT_NAMES = ["image", "image_size", "text_embeddings"]
OUTPUT_NAMES = ["logits", "mask_logits", "boxes"]


class ExportError(RuntimeError):
    """The model (or a part of it) cannot be exported; the message says which part and why."""


def export_model(model: torch.nn.Module, cfg, vocabulary: Sequence[str], output_dir: str,
                 graph_format: str = "onnx", sample_image: Optional[np.ndarray] = None,
                 stuff: Sequence[str] = ()) -> ExportFiles:
    """Export `model` (an `MQFormer` with its weights) for `vocabulary` into the new folder `output_dir`.

    Args:
        cfg: the model's config (input format, test-time resize, post-processing thresholds, task).
        vocabulary: the class names or sentences the export is prompted with (their embeddings are
            computed here, once); stuff: those of them that are stuff in panoptic outputs.
        graph_format: "onnx" (input sizes stay free) or "torchscript" (traced: the sample image's
            size is the only size the graph takes).
        sample_image: (H, W, 3) uint8 BGR image the graph is traced on; None = a mid-grey image of
            INPUT.MIN_SIZE_TEST x INPUT.MIN_SIZE_TEST.

    Returns:
        the written `ExportFiles`. Nothing is written when it fails, and an existing `output_dir`
        is refused.
    """
    if graph_format not in GRAPH_FILES:
        raise ValueError(f"graph_format {graph_format!r} is not one of {sorted(GRAPH_FILES)}")
    if os.path.exists(output_dir):
        raise FileExistsError(f"{output_dir} exists; exports go to a new folder (nothing is overwritten)")
    vocabulary = check_vocabulary(list(vocabulary), "the export vocabulary")
    if not vocabulary:
        raise ValueError("the export vocabulary is empty: give at least one class name or sentence")
    _check_exportable(model)
    model.eval()
    with torch.no_grad():
        embeddings = model.text_encoder(vocabulary, use_templates=True).float()
    stuff = set(stuff)
    files = ExportFiles(
        output_dir, graph_format, ExportedVocabulary(vocabulary, [text not in stuff for text in vocabulary],
                                                     embeddings.cpu().numpy()),
        cfg.INPUT.FORMAT, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, model.postprocess_settings,
        model.test_task, model.size_divisibility)
    graph = ExportableMQFormer(model).eval()
    image = sample_tensor(cfg, sample_image)
    inputs = (pad_to_multiple(image, graph.size_divisibility), torch.tensor(image.shape[-2:]), embeddings)
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the export is an ordinary folder
    try:
        files.folder = staging
        if graph_format == "onnx":
            _export_onnx(graph, inputs, files.graph_path)
        else:
            _export_torchscript(graph, inputs, files.graph_path)
            files.fixed_input_size = list(inputs[0].shape[-2:])
        files.write_settings()
        os.rename(staging, output_dir)  # the folder appears complete or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files.folder = output_dir
    logger.info("exported %s for %d texts to %s", graph_format, len(vocabulary), output_dir)
    return files


def sample_tensor(cfg, sample_image: Optional[np.ndarray]) -> torch.Tensor:
    """(1, 3, h, w) float32 of the sample image as the predictor gives it to the model: resized
    (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), in INPUT.FORMAT channel order."""
    if sample_image is None:
        side = cfg.INPUT.MIN_SIZE_TEST
        sample_image = np.full((side, side, 3), 128, dtype=np.uint8)
    image = as_uint8_bgr(sample_image, "sample_image")
    if cfg.INPUT.FORMAT == "RGB":
        image = image[:, :, ::-1]
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    image = resize.get_transform(image).apply_image(np.ascontiguousarray(image))
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()


def _check_exportable(model: torch.nn.Module) -> None:
    """Refuse what the graph cannot hold, saying why."""
    for part in ("backbone", "pixel_decoder", "decoder", "text_encoder"):
        if not hasattr(model, part):
            raise ExportError(f"{type(model).__name__} has no {part!r}: only MQFormer models can be exported")
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ExportError(f"the model is on {device}: export on CPU (MODEL.DEVICE cpu); on CUDA deformable "
                          "attention runs the compiled op, which has no ONNX form (the exported graph "
                          "runs on any onnxruntime device)")


def _export_onnx(graph: ExportableMQFormer, inputs, path: str) -> None:
    """torch.export -> ONNX, with the image's height and width and the number of texts left free."""
    auto = torch.export.Dim.AUTO
    image, image_size, embeddings = inputs
    texts = embeddings if embeddings.shape[0] > 1 else embeddings.repeat(2, 1)  # a size of 1 would be fixed
    try:
        torch.onnx.export(graph, (image, image_size, texts), path, dynamo=True, opset_version=ONNX_OPSET,
                          input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, verbose=False, external_data=False,
                          dynamic_shapes=({2: auto, 3: auto}, None, {0: auto}))
    except Exception as error:
        raise ExportError(f"ONNX export failed in {_model_frame(error)}: {type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}") from error


def _export_torchscript(graph: ExportableMQFormer, inputs, path: str) -> None:
    """Traced TorchScript: the trace records the feature levels' sizes, so the graph takes the
    sample image's size only (`ExportFiles.fixed_input_size`)."""
    try:
        with torch.no_grad():
            traced = torch.jit.trace(graph, inputs, check_trace=False)
    except Exception as error:
        raise ExportError(f"TorchScript tracing failed in {_model_frame(error)}: {type(error).__name__}: "
                          f"{error}") from error
    traced.save(path)


def _model_frame(error: BaseException) -> str:
    """The innermost frame of the traceback inside this project or detectron2 (the model part that
    could not be exported), else the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "mqformer_d2" in f.filename or "detectron2" in f.filename]
    frame = (ours or frames or [None])[-1]
    return "an unknown place" if frame is None else f"{frame.filename}:{frame.lineno} ({frame.name})"
