"""The run form's words for config fields, in one torch- and streamlit-free place: the form labels its widgets
with them and a journal draft writes "Label: old → new" in the same words."""

from __future__ import annotations

LABELS = {"n_way": "Classes per episode (N)", "k_shot": "Support images per class (K)",
          "q_queries": "Query images per class (Q)", "lr": "Learning rate", "embed_dim": "Width",
          "num_heads": "Attention heads", "mlp_ratio": "MLP ratio", "pos_embed": "Position embedding",
          "grad_clip": "Gradient clip", "min_lr": "Final learning rate (cosine)"}


def label_in_words(path: str) -> str:
    """`data.samples_per_class` -> "Samples per class"; the dotted path stays in the help."""
    name = path.rsplit(".", 1)[-1]
    return LABELS.get(name) or name.replace("_", " ").capitalize()
