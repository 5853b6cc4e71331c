"""Jacobians of softmax and log_softmax, and their products with a vector.

All of them work along one axis, which `prepare` moves to the end. They never compute
``1 - s`` by subtraction at a dominant entry (see `complement`), and the products centre
the vector on its value at the maximum, so ``v - <s, v>`` keeps its digits there too.
The products never build the n x n matrix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ._kernels.arithmetic import halvings, scale, sum_safe_bound
from ._kernels.centring import centred
from ._kernels.normalise import complement, normalise, probabilities, top_count_and_tail
from ._platform import Array, all_below_now, array_device, can_update_in_place
from ._validation import astype_saturating, check_shape, move_axis, prepare, to_namespace

__all__ = [
    "log_softmax_jacobian",
    "log_softmax_jvp",
    "log_softmax_vjp",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
]

_COMMON_PARAMETERS = """
    Parameters
    ----------
    x : array
        Real logits (see `softmax` for the accepted types and dtypes).
    axis : int, optional
        The one axis along which softmax is taken. Default -1.
    temperature : float or array, optional
        Positive, finite temperature, or one per slice. Default 1.
    where : bool array, optional
        Entries to include; excluded entries' rows and columns are 0."""


class _Vector(NamedTuple):
    """A checked tangent or cotangent, axis last, and what its product's finish needs."""

    values: Array
    poisoned: Array | None  # slices whose vector holds inf or NaN
    shrink: Array | None  # per-slice power of two a huge vector was scaled by


class _Along:
    """Everything one call along an axis needs: inputs, probabilities and their complements."""

    def __init__(self, x: Array, axis: int, temperature: Any, where: Any) -> None:
        p = prepare(x, axis=axis, temperature=temperature, where=where, move_axis_last=True)
        n = normalise(p)
        self.p, self.xp = p, p.xp
        self.top = top_count_and_tail(p, n)
        self.is_top, self.count, _ = self.top
        self.s = probabilities(p, n)
        self.complement = complement(p, n, self.top, self.s)
        self.axis = axis % p.x.ndim
        # x's shape as the caller gave it: the axis goes back where it was.
        shape = list(p.x.shape)
        shape.insert(self.axis, shape.pop())
        self.shape = tuple(shape)

    def vector(self, value: Any, name: str) -> _Vector:
        """A tangent or cotangent as an array like x's, axis last, 0 at excluded entries."""
        xp = self.xp
        v = to_namespace(xp, self.p.x, value, name)
        if not xp.isdtype(v.dtype, ("real floating", "integral", "bool")):
            raise TypeError(f"{name} must be real, got dtype {v.dtype}")
        check_shape(v, self.shape, name, "x's shape")
        v = astype_saturating(xp, xp.broadcast_to(v, self.shape), self.p.x.dtype)
        v = move_axis(xp, v, self.axis, -1)
        v = v if self.p.where is None else xp.where(self.p.where, v, 0.0)
        # Entries below `huge` cannot overflow in v - <s, v> and its sums over a slice.
        huge = sum_safe_bound(xp, v.dtype, v.shape[-1]) if v.ndim else 0.0
        # (An empty v holds nothing to poison, and has no maximum to ask for.)
        if not self.p.lazy and (0 in tuple(v.shape) or all_below_now(xp, v, huge)):
            return _Vector(v, None, None)
        # A slice whose vector holds inf or NaN has a NaN product (IEEE arithmetic would give
        # a mix of NaN and inf, with warnings): computed from a zeroed vector, and set to NaN
        # in `finish_vector`.
        poisoned = xp.any(~xp.isfinite(v), axis=-1, keepdims=True)
        v = xp.where(poisoned, 0.0, v)
        if self.p.lazy:
            return _Vector(v, poisoned, None)
        # A finite vector near the float limit is scaled per slice by a power of two (exact)
        # below `huge`; `finish_vector` scales the result back, to +-inf where it overflows.
        shrink = 2.0 ** -halvings(xp, xp.max(xp.abs(v), axis=-1, keepdims=True), huge)
        return _Vector(v * shrink, poisoned, shrink)

    def centred(self, v: _Vector) -> Array:
        """``v - <s, v>``, exact at a dominant entry (see `xpsoftmax._kernels.centring`)."""
        xp, s, last = self.xp, self.s, self.s.ndim - 1
        if s.shape[last] == 0:  # empty slices: nothing to centre
            return v.values
        return centred(xp, v.values, s, last)

    def finish_vector(self, out: Array, v: _Vector) -> Array:
        """Scale by the temperature, zero the excluded entries and put the axis back."""
        xp, p = self.xp, self.p
        if v.poisoned is not None:
            out = xp.where(v.poisoned, xp.nan, out)
        if p.where is not None:
            out = xp.where(p.where, out, 0.0)
        out = scale(xp, out, p.temperature)
        if v.shrink is not None:
            out = scale(xp, out, v.shrink)
        return p.finish(move_axis(xp, out, -1, self.axis))

    def finish_matrix(self, jac: Array) -> Array:
        """Scale an (..., n, n) matrix by the per-slice temperature."""
        t = self.p.temperature
        if isinstance(t, float):
            # (n times the input's size: skip a division by 1 on every entry.)
            return self.p.finish(jac if t == 1.0 else scale(self.xp, jac, t))
        return self.p.finish(scale(self.xp, jac, self.xp.expand_dims(t, axis=-1)))

    def with_diagonal(self, matrix: Array, diagonal: Array) -> Array:
        """The (..., n, n) `matrix` with its diagonal replaced by the (..., n) `diagonal`.

        Into the matrix's memory where it is our own mutable temporary: the diagonal of the
        flattened matrix is every (n + 1)-th entry, a strided slice, so n entries per slice
        are written where a select would rewrite all n * n.
        """
        xp, n = self.xp, matrix.shape[-1]
        if not can_update_in_place(matrix):
            return xp.where(self.eye(), xp.expand_dims(diagonal, axis=-1), matrix)
        flat = xp.reshape(matrix, (*matrix.shape[:-2], n * n))
        flat[..., :: n + 1] = diagonal
        return xp.reshape(flat, tuple(matrix.shape))

    def eye(self) -> Array:
        # Positions compared, not ``xp.eye``: inductor lowers eye through a deprecated helper of
        # its own and warns on every first compile.
        xp = self.xp
        positions = xp.arange(self.s.shape[-1], device=array_device(self.s))
        return xp.expand_dims(positions, axis=-1) == positions


def softmax_jacobian(
    x: Array, /, *, axis: int = -1, temperature: float | Array = 1.0, where: Array | None = None
) -> Array:
    """Jacobian of `softmax`: ``J[..., i, j] = s_i (delta_ij - s_j) / T``.
    {parameters_and_returns}
        Shape ``(*batch, n, n)``: `x`'s shape with `axis` removed, then n = ``x.shape[axis]``
        twice. The diagonal ``s_i (1 - s_i)`` stays accurate where ``s_i`` is close to 1.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> float(xpsoftmax.softmax_jacobian(np.array([0.0, -40.0]))[0, 0])
    4.248354255291589e-18
    """
    a = _Along(x, axis, temperature, where)
    xp, s = a.xp, a.s
    # Negate the small factor, not the n x n product: one pass over the matrix fewer.
    outer = xp.expand_dims(-s, axis=-1) * xp.expand_dims(s, axis=-2)
    return a.finish_matrix(a.with_diagonal(outer, s * a.complement))


def log_softmax_jacobian(
    x: Array, /, *, axis: int = -1, temperature: float | Array = 1.0, where: Array | None = None
) -> Array:
    """Jacobian of `log_softmax`: ``J[..., i, j] = (delta_ij - s_j) / T``.
    {parameters_and_returns}
        Shape ``(*batch, n, n)`` as for `softmax_jacobian`; 0 where i or j is excluded.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> xpsoftmax.log_softmax_jacobian(np.array([0.0, 0.0]))
    array([[ 0.5, -0.5],
           [-0.5,  0.5]])
    """
    a = _Along(x, axis, temperature, where)
    xp = a.xp
    jac = xp.where(a.eye(), xp.expand_dims(a.complement, axis=-2), -xp.expand_dims(a.s, axis=-2))
    if a.p.where is not None:
        included = a.p.where
        both = xp.expand_dims(included, axis=-1) & xp.expand_dims(included, axis=-2)
        jac = xp.where(both, jac, 0.0)
    return a.finish_matrix(jac)


class _Product(Protocol):
    """The signature the four products share; the second argument is named `v` or `g`."""

    def __call__(
        self,
        x: Array,
        vector: Array,
        /,
        *,
        axis: int = -1,
        temperature: float | Array = 1.0,
        where: Array | None = None,
    ) -> Array: ...


_PRODUCT_DOC = """{summary}
    {parameters}
    {name} : array
        {role}, broadcastable to `x`.

    Returns
    -------
    array
        Shape of `x`; 0 at excluded entries, where `{name}` is ignored.{more}

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> {example}
    {result}
    """


def _product(
    name: str, vector: str, rule: Callable[[_Along, _Vector], Array], doc: dict[str, str]
) -> _Product:
    """The public product `name`: `rule` of x's probabilities and the checked `vector`.

    One function for the four products, so that their signature, their checks and their
    documentation are written once; `doc` fills the docstring's summary, the vector's role, a
    remark on the result (optional) and the example.
    """

    # The arguments' types and defaults live in `_Product`, which the signature shows.
    def product(
        x: Array, value: Array, /, *, axis: Any = -1, temperature: Any = 1.0, where: Any = None
    ) -> Array:
        a = _Along(x, axis, temperature, where)
        return rule(a, a.vector(value, vector))

    product.__name__ = product.__qualname__ = name
    product.__doc__ = _PRODUCT_DOC.format(
        name=vector, parameters=_COMMON_PARAMETERS, **{"more": "", **doc}
    )
    # Introspection and the API pages show `_Product`'s signature, the vector named `v` or `g`.
    _self, *parameters = inspect.signature(_Product.__call__).parameters.values()
    parameters = [p.replace(name=vector) if p.name == "vector" else p for p in parameters]
    signature = inspect.Signature(parameters, return_annotation="Array")
    product.__signature__ = signature  # type: ignore[attr-defined]
    return product


def _softmax_times(a: _Along, v: _Vector) -> Array:
    """``s * (v - <s, v>) / T``: softmax's Jacobian times `v` (J is symmetric: also ``v^T J``)."""
    return a.finish_vector(a.s * a.centred(v), v)


def _log_softmax_times(a: _Along, v: _Vector) -> Array:
    """``(v - <s, v>) / T``: log_softmax's Jacobian times `v`."""
    return a.finish_vector(a.centred(v), v)


def _times_log_softmax(a: _Along, cotangent: _Vector) -> Array:
    """``(g - s * sum(g)) / T``: `g` times log_softmax's Jacobian, exact at a lone dominant entry
    k as ``g_k (1 - s_k) - s_k * sum_(j != k) g_j`` with ``1 - s_k`` from `complement`."""
    xp, s, g = a.xp, a.s, cotangent.values
    direct = g - s * xp.sum(g, axis=-1, keepdims=True)
    rest_of_g = xp.sum(xp.where(a.is_top, 0.0, g), axis=-1, keepdims=True)
    at_lone_top = g * a.complement - s * rest_of_g
    return a.finish_vector(xp.where(a.is_top & (a.count == 1.0), at_lone_top, direct), cotangent)


_TANGENT, _COTANGENT = "Tangent", "Cotangent"

softmax_jvp = _product(
    "softmax_jvp",
    "v",
    _softmax_times,
    {
        "summary": "Jacobian-vector product of `softmax`: ``J v = s * (v - <s, v>) / T``.",
        "role": _TANGENT,
        "example": "xpsoftmax.softmax_jvp(np.array([0.0, 0.0]), np.array([1.0, 0.0]))",
        "result": "array([ 0.25, -0.25])",
    },
)
softmax_vjp = _product(
    "softmax_vjp",
    "g",
    _softmax_times,  # J is symmetric, so the VJP is the JVP of the cotangent.
    {
        "summary": "Vector-Jacobian product of `softmax`: ``g^T J``, equal to `softmax_jvp` (J"
        " is symmetric).",
        "role": _COTANGENT,
        "example": "xpsoftmax.softmax_vjp(np.array([0.0, 0.0]), np.array([1.0, 0.0]))",
        "result": "array([ 0.25, -0.25])",
    },
)
log_softmax_jvp = _product(
    "log_softmax_jvp",
    "v",
    _log_softmax_times,
    {
        "summary": "Jacobian-vector product of `log_softmax`: ``(v - <s, v>) / T``.",
        "role": _TANGENT,
        "example": "xpsoftmax.log_softmax_jvp(np.array([0.0, 0.0]), np.array([1.0, 0.0]))",
        "result": "array([ 0.5, -0.5])",
    },
)
log_softmax_vjp = _product(
    "log_softmax_vjp",
    "g",
    _times_log_softmax,
    {
        "summary": "Vector-Jacobian product of `log_softmax`: ``(g - s * sum(g)) / T``.",
        "role": _COTANGENT,
        "more": " At a lone dominant entry\n        k it is ``g_k (1 - s_k) - s_k *"
        " sum_(j != k) g_j``, with ``1 - s_k`` from `complement`.",
        "example": "float(xpsoftmax.log_softmax_vjp(np.array([0.0, -40.0]),"
        " np.array([1.0, 0.0]))[0])",
        "result": "4.248354255291589e-18",
    },
)


# The Jacobians' docstrings share their parameters and the heading of what they return.
for _public in (softmax_jacobian, log_softmax_jacobian):
    _public.__doc__ = (_public.__doc__ or "").replace(
        "{parameters_and_returns}", _COMMON_PARAMETERS + "\n\n    Returns\n    -------\n    array"
    )
