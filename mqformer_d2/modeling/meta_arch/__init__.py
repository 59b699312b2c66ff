"""The MQ-Former meta-architecture (registered in detectron2's META_ARCH_REGISTRY)."""
from .mqformer import TASK_OUTPUTS, MQFormer

__all__ = ["MQFormer", "TASK_OUTPUTS"]
