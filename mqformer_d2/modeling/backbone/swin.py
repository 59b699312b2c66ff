"""Swin Transformer (tiny / base / large) from timm as a detectron2 backbone giving res2..res5.

timm is imported when a Swin backbone is built, not with the package (ResNet users never pay for
it; it is about half of `import mqformer_d2` otherwise).
"""
from typing import Dict, Sequence

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn

_STAGE_NAMES = ("res2", "res3", "res4", "res5")


class TimmSwinBackbone(Backbone):
    """Swin built by timm (no download); stage outputs res2..res5 at strides 4, 8, 16, 32.

    The timm model keeps its own parameter names under `self.swin`, so an ImageNet checkpoint of
    timm (or of the official Swin, whose names timm follows) loads by name. Each returned stage gets
    its own LayerNorm, as in the detection versions of Swin.

    Args:
        model_name: timm Swin name, e.g. "swin_tiny_patch4_window7_224".
        out_features: subset of res2..res5 to return.
        drop_path_rate: stochastic depth rate.
    """

    def __init__(self, *, model_name: str, out_features: Sequence[str], drop_path_rate: float):
        super().__init__()
        unknown = [name for name in out_features if name not in _STAGE_NAMES]
        if unknown:
            raise ValueError(f"MODEL.MQFORMER.SWIN.OUT_FEATURES: unknown {unknown}; use {_STAGE_NAMES}")
        if not model_name.startswith("swin_"):
            raise ValueError(f"MODEL.MQFORMER.SWIN.MODEL_NAME: {model_name!r} is not a timm Swin model")
        import timm

        # dynamic_img_size: any input whose sides are multiples of 32 works (windows are padded).
        self.swin = timm.create_model(
            model_name, pretrained=False, num_classes=0, dynamic_img_size=True,
            drop_path_rate=drop_path_rate,
        )
        self._stage_indices = [_STAGE_NAMES.index(name) for name in out_features]
        # The classifier's final norm and head are never used: drop them so that every parameter
        # gets a gradient (no find_unused_parameters under DDP).
        self.swin.prune_intermediate_layers(max(self._stage_indices) + 1, prune_norm=True, prune_head=True)
        self._out_features = list(out_features)
        info = self.swin.feature_info
        self._out_feature_channels = {n: info[i]["num_chs"] for n, i in zip(out_features, self._stage_indices)}
        self._out_feature_strides = {n: info[i]["reduction"] for n, i in zip(out_features, self._stage_indices)}
        self.output_norms = nn.ModuleDict(
            {name: nn.LayerNorm(self._out_feature_channels[name]) for name in out_features}
        )

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        """(B, 3, H, W), H and W multiples of 32 -> {name: (B, C_name, H / s, W / s)}."""
        stages = self.swin.forward_intermediates(
            images, indices=self._stage_indices, intermediates_only=True, output_fmt="NCHW"
        )
        outputs = {}
        for name, features in zip(self._out_features, stages):
            # LayerNorm normalises the channel axis, which is last in NHWC.
            outputs[name] = self.output_norms[name](features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


@BACKBONE_REGISTRY.register()
def build_timm_swin_backbone(cfg, input_shape: ShapeSpec) -> TimmSwinBackbone:
    """Set MODEL.BACKBONE.NAME to "build_timm_swin_backbone"; reads MODEL.MQFORMER.SWIN."""
    if input_shape.channels != 3:
        raise ValueError(f"Swin expects 3 input channels (MODEL.PIXEL_MEAN), got {input_shape.channels}")
    swin = cfg.MODEL.MQFORMER.SWIN
    return TimmSwinBackbone(
        model_name=swin.MODEL_NAME,
        out_features=list(swin.OUT_FEATURES),
        drop_path_rate=swin.DROP_PATH_RATE,
    )
