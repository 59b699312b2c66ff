"""Backbones registered in detectron2's BACKBONE_REGISTRY.

ResNets (R18/R50/R101) are detectron2's own `build_resnet_backbone`, chosen through
MODEL.RESNETS; this package adds Swin through timm (`build_timm_swin_backbone`).
"""
from .swin import TimmSwinBackbone, build_timm_swin_backbone

__all__ = ["TimmSwinBackbone", "build_timm_swin_backbone"]
