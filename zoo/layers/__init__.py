"""Layers of the zoo's own, for what neither Keras nor keras_hub provides.

Each is registered as serializable under the package name "zoo", so `.keras`
files that contain them load with `safe_mode=True`.
"""

from zoo.layers.padding_mask import PaddingMask

__all__ = ["PaddingMask"]
