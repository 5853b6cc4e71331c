"""xpsoftmax: the softmax family, written once for every Python array API library.

Numerically stable `softmax`, `log_softmax`, `logsumexp`, their Jacobians and
Jacobian-vector products, and `cross_entropy`, for NumPy, JAX, PyTorch, CuPy, Dask,
array-api-strict and any other library that array-api-compat supports. Results keep the
input's library, device and dtype.
"""

from . import _attach
from ._jacobian import (
    log_softmax_jacobian,
    log_softmax_jvp,
    log_softmax_vjp,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)
from ._loss import cross_entropy
from ._softmax import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

# Ready the derivative rules for libraries imported before us (see _attach).
_attach.define_for_imported_libraries()

__all__ = [
    "cross_entropy",
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
