"""Running an export folder without the model's code: onnxruntime (or torch.jit for TorchScript)
for the graph, then the same post-processing as the model (`postprocessing.task_outputs`)."""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.data import transforms as T
from torch import nn

from ..data.images import as_uint8_bgr, resized_shape
from ..modeling.meta_arch import postprocessing as post
from .files import ExportFiles
from .graph import pad_to_multiple

logger = logging.getLogger(__name__)


class ExportedModel(nn.Module):
    """An export folder behind the model's inference interface: called on a list of model inputs
    (mapper outputs: "image" (3, h, w) resized, "height", "width", optional "task", "vocabulary",
    "stuff_prompts", "sem_seg_output"), it returns one result dict per input, like
    `MQFormer.inference`, so detectron2's `inference_on_dataset` and the evaluators take it as is.

    Args:
        folder: an export folder (`tools/deploy/export_model.py`).
        num_threads: onnxruntime's intra-op threads; None = torch.get_num_threads() (the same
            threads as PyTorch, for fair comparisons).
    """

    def __init__(self, folder: str, num_threads: Optional[int] = None):
        super().__init__()
        self.files = ExportFiles.load(folder)
        self.size_divisibility = self.files.size_divisibility
        self._run = _graph_runner(self.files, num_threads or torch.get_num_threads())

    def forward(self, batched_inputs: List[Dict]) -> List[Dict]:
        return [self._image_outputs(x) for x in batched_inputs]

    def raw_outputs(self, image: torch.Tensor, texts: Sequence[str]):
        """(3, h, w) resized image, T texts -> logits (Q, T), mask logits (Q, Hpad/4, Wpad/4),
        boxes (Q, 4), and the padded size (Hpad, Wpad)."""
        image = image[None].float()
        fixed = self.files.fixed_input_size
        padded = pad_to_multiple(image, self.size_divisibility)
        if fixed is not None and list(padded.shape[-2:]) != list(fixed):
            raise ValueError(f"{self.files.graph_path} was traced for padded inputs of {fixed} (h, w) only, "
                             f"got {list(padded.shape[-2:])}; export to ONNX for free input sizes")
        embeddings = self.files.vocabulary.select(texts)
        outputs = self._run(padded.numpy(), np.asarray(image.shape[-2:], dtype=np.int64), embeddings)
        logits, masks, boxes = (torch.as_tensor(np.asarray(o))[0] for o in outputs)
        return logits, masks, boxes, tuple(padded.shape[-2:])

    def _image_outputs(self, x: Dict) -> Dict:
        texts = list(x.get("vocabulary") or self.files.vocabulary.names)
        task = x.get("task", self.files.task)
        if task not in post.TASK_OUTPUTS:
            raise ValueError(f"input 'task' {task!r} is not one of {sorted(post.TASK_OUTPUTS)}")
        logits, masks, boxes, padded_size = self.raw_outputs(x["image"], texts)
        image_size = tuple(x["image"].shape[-2:])
        resize = post.ResizeSpec(padded_size, image_size, (x.get("height", image_size[0]), x.get("width", image_size[1])))
        stuff = set(x.get("stuff_prompts", ()))
        is_thing = [thing and text not in stuff for text, thing in zip(texts, self.files.vocabulary.things(texts))]
        return post.task_outputs(task, logits, masks, boxes, resize, self.files.postprocess, texts, is_thing,
                                 x.get("sem_seg_output", "scores"))


class ExportedPredictor:
    """`MQFormerPredictor`'s interface over an export folder: BGR image in, results at its size out.

        predictor = ExportedPredictor("output/export/shapes")
        predictor(cv2.imread("image.png"), prompts=["red star"], task="instance")

    prompts must be among the exported vocabulary (None = all of it).
    """

    def __init__(self, folder: str, num_threads: Optional[int] = None):
        self.model = ExportedModel(folder, num_threads)
        files = self.model.files
        self.aug = T.ResizeShortestEdge([files.min_size_test] * 2, files.max_size_test)

    def __call__(self, original_image: np.ndarray, prompts: Optional[Sequence[str]] = None,
                 task: Optional[str] = None) -> Dict:
        files = self.model.files
        original_image = as_uint8_bgr(original_image, "original_image")
        if files.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        resized_shape(height, width, files.min_size_test, files.max_size_test, "original_image")
        image = self.aug.get_transform(original_image).apply_image(np.ascontiguousarray(original_image))
        inputs = {"image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
                  "height": height, "width": width}
        if prompts is not None:
            if isinstance(prompts, str):
                raise TypeError(f"prompts must be a list of strings, got the string {prompts!r}")
            inputs["vocabulary"] = list(prompts)
        if task is not None:
            inputs["task"] = task
        with torch.no_grad():
            return self.model([inputs])[0]


def _graph_runner(files: ExportFiles, num_threads: int):
    """A function (padded image, image size, embeddings) numpy arrays -> the graph's 3 outputs."""
    if files.graph_format == "torchscript":
        graph = torch.jit.load(files.graph_path, map_location="cpu")

        def run_torchscript(image, image_size, embeddings):
            with torch.no_grad():
                return graph(torch.from_numpy(image), torch.from_numpy(image_size), torch.from_numpy(embeddings))
        return run_torchscript
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(files.graph_path, options, providers=["CPUExecutionProvider"])

    def run_onnx(image, image_size, embeddings):
        return session.run(None, {"image": image, "image_size": image_size,
                                  "text_embeddings": embeddings.astype(np.float32)})
    return run_onnx
