"""L2 normalisation shared by logit normalisation (eq. 6) and the cosine-softmax head (eq. 7)."""

import keras
from keras import ops

# Same floor on the squared norm as tf.math.l2_normalize, which the released code used.
L2_NORMALIZE_EPSILON = 1e-12


def l2_normalize(x, axis: int = -1):
  """Returns `x / max(||x||_2, sqrt(1e-12))` along `axis`: 0 with a finite gradient at x = 0."""
  dtype = keras.backend.standardize_dtype(x.dtype)
  # 1e-12 underflows in float16; the normalisation runs in float32 for 16-bit inputs.
  if dtype in ("float16", "bfloat16"):
    x = ops.cast(x, "float32")
  squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
  normalized = x * ops.rsqrt(
      ops.maximum(squared_norm, ops.cast(L2_NORMALIZE_EPSILON, x.dtype)))
  return ops.cast(normalized, dtype)
