"""digits-seg: a DIGITS-style training server for semantic segmentation."""

__version__ = "0.1.0"
