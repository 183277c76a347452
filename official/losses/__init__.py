"""The paper's nine objectives, their heads and one registry (docs/protocol.md §1).

    from official import losses
    objective = losses.get_objective("cosine_softmax")        # released defaults (tau=0.05)
    z = objective.head(num_classes)(objective.penultimate()(features))   # "final_layer"
    logits = objective.outputs()(z)                                       # "outputs"
    loss = objective.loss(labels, z)                  # or losses.get("cosine_softmax")
"""

from official.losses.heads import CosineSoftmaxHead
from official.losses.heads import FinalLayerL2
from official.losses.heads import LogitNormalization
from official.losses.heads import TemperatureScaling
from official.losses.hyperparameters import RELEASED_DEFAULTS
from official.losses.objectives import CosineSoftmaxCrossEntropy
from official.losses.objectives import ExtraFinalLayerL2CrossEntropy
from official.losses.objectives import LabelSmoothingCrossEntropy
from official.losses.objectives import LogitNormalizationCrossEntropy
from official.losses.objectives import LogitPenaltyCrossEntropy
from official.losses.objectives import ObjectiveLoss
from official.losses.objectives import PenultimateDropoutCrossEntropy
from official.losses.objectives import SigmoidCrossEntropy
from official.losses.objectives import SoftmaxCrossEntropy
from official.losses.objectives import SquaredError
from official.losses.registry import ALIASES
from official.losses.registry import canonical_name
from official.losses.registry import DEFAULT_HPARAMS
from official.losses.registry import get
from official.losses.registry import get_objective
from official.losses.registry import NAMES
from official.losses.registry import Objective
from official.losses.registry import ObjectiveDefinition
