"""The nine objectives of Kornblith et al. (2021), their heads and one registry.

Sources of every form and default: docs/protocol.md §1.

    from official import losses
    objective = losses.get_objective("cosine_softmax")        # released defaults (tau=0.05)
    z = objective.head(num_classes)(objective.penultimate()(features))   # "final_layer"
    logits = objective.outputs()(z)                                       # "outputs"
    loss = objective.loss(labels, z)                  # or losses.get("cosine_softmax")

Names: softmax, label_smoothing, sigmoid, extra_final_layer_l2, dropout, logit_penalty,
logit_normalization, cosine_softmax, squared_error (alias "mse"). Keywords: alpha, lambda_,
keep_prob, beta, tau, kappa, m, loss_scale, and the switches normalize_features (cosine head:
paper eq. 7 when True, released head when False) and scale_loss_by_tau (paper §3.4 footnote).
Released defaults: RELEASED_DEFAULTS (the one table, official.losses.hyperparameters).

Alone, the losses of "extra_final_layer_l2" and "dropout" are softmax cross-entropy (their
effect is a layer of the model; `get` warns); build a model with `get_objective(name)`'s
`penultimate()`, `head(K)` and `outputs()` layers.
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
