"""Forward hooks on MQ-Former's public submodules: what each stage produced in the last forward."""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

from torch import Tensor, nn


@dataclass
class Activations:
    """What one forward call of an MQ-Former produced (B images, N queries, C channels).

    backbone: {level: (B, C_level, H / stride, W / stride)}.
    pixel: the pixel decoder's `PixelDecoderOutput` (memory (B, S, C), spatial_shapes (L, 2),
        level_start_index (L,), mask_features (B, C, H/4, W/4), ...).
    selected: the conditional query selector's `ConditionalQueries` (content (B, N_c, C),
        proposals with pred_logits / pred_boxes / pred_masks), or None without conditional queries.
    layers: each decoder layer's output queries (B, N, C), first to last.
    """

    backbone: Dict[str, Tensor] = field(default_factory=dict)
    pixel: Optional[object] = None
    selected: Optional[object] = None
    layers: List[Tensor] = field(default_factory=list)


@contextmanager
def captured_activations(model: nn.Module) -> Iterator[Activations]:
    """Hooks the backbone, pixel decoder, selector and decoder layers of `model` while in the
    block; the yielded `Activations` holds the latest forward call's outputs (layers are reset
    when the backbone runs, i.e. at the start of every forward)."""
    captured = Activations()

    def on_backbone(module, inputs, output):
        captured.backbone = output
        captured.layers = []

    hooks = [model.backbone.register_forward_hook(on_backbone),
             model.pixel_decoder.register_forward_hook(lambda m, i, o: setattr(captured, "pixel", o))]
    if getattr(model.decoder, "selector", None) is not None:
        hooks.append(model.decoder.selector.register_forward_hook(lambda m, i, o: setattr(captured, "selected", o)))
    for layer in model.decoder.layers:
        hooks.append(layer.register_forward_hook(lambda m, i, o: captured.layers.append(o)))
    try:
        yield captured
    finally:
        for hook in hooks:
            hook.remove()
