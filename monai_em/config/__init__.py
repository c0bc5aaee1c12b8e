"""PyTorch Connectomics YAML compatibility."""

from .pytc import PyTCConfig, load_pytc_config, pytc_defaults
