"""Models built from timm's layers: the ViT encoder, heads, decoders and the experiment that joins them."""

from engine.models.experiment import ExperimentModel, StepOutput
from engine.models.masking import patchify, random_masking, unpatchify

__all__ = ["ExperimentModel", "StepOutput", "patchify", "random_masking", "unpatchify"]
