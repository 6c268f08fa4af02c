"""supcon.models: ResNet encoders, heads, and the Keras models that train them.

* `resnet(depth, ...)`: encoder, float32 images `[N, H, W, 3]` in [0, 255] -> `[N, F]`.
* `keras_application(name, input_shape)`: any `keras.applications` architecture as an encoder.
* `ProjectionHead`, `ClassifierHead`: the heads of Khosla et al. 2020 §3.2.
* `SupConModel`: encoder + projection (+ classifier), trained by `fit` with a
  `supcon.losses` loss (SupCon, SimCLR or GenSCL).
* `CrossEntropyModel`: the cross-entropy baseline on the same encoder.
* `LinearClassifier`: stage-2 linear evaluation on a frozen encoder.
* `export_saved_model`: self-contained SavedModel with image and JPEG/PNG signatures.
"""

from supcon.models.cross_entropy_model import CrossEntropyModel
from supcon.models.export import export_saved_model
from supcon.models.heads import ClassifierHead
from supcon.models.heads import ProjectionHead
from supcon.models.keras_encoders import keras_application
from supcon.models.linear_classifier import LinearClassifier
from supcon.models.resnet_encoder import resnet
from supcon.models.supcon_model import SupConModel

__all__ = [
    "ClassifierHead",
    "CrossEntropyModel",
    "LinearClassifier",
    "ProjectionHead",
    "SupConModel",
    "export_saved_model",
    "keras_application",
    "resnet",
]
