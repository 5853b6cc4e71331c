"""xpsoftmax: the softmax family, written once for every Python array API library.

Numerically stable `softmax`, `log_softmax`, `logsumexp`, their Jacobians and
Jacobian-vector products, `cross_entropy`, `linear_cross_entropy` (a classifier's loss
without its logits), and temperature scaling with its calibration
measures (`fit_temperature`, `calibration_error`, `calibration_curve`), for NumPy, JAX,
PyTorch, CuPy, Dask, array-api-strict and any other library that array-api-compat supports.
Results keep the input's library, device and dtype.
"""

from ._calibration import calibration_curve, calibration_error
from ._derivatives import attach as _attach
from ._jacobian import (
    log_softmax_jacobian,
    log_softmax_jvp,
    log_softmax_vjp,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)
from ._linear_loss import linear_cross_entropy, linear_cross_entropy_vjp
from ._loss import cross_entropy
from ._softmax import log_softmax, logsumexp, softmax
from ._temperature import fit_temperature

__version__ = "0.1.0"

# Ready the derivative rules for libraries imported before us (see `_derivatives.attach`).
_attach.define_for_imported_libraries()

__all__ = [
    "calibration_curve",
    "calibration_error",
    "cross_entropy",
    "fit_temperature",
    "linear_cross_entropy",
    "linear_cross_entropy_vjp",
    "log_softmax",
    "log_softmax_jacobian",
    "log_softmax_jvp",
    "log_softmax_vjp",
    "logsumexp",
    "softmax",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
]
