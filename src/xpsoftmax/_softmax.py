"""softmax, log_softmax and logsumexp."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._chunked import by_chunk_statistics, by_chunks
from ._derivatives.attach import apply
from ._derivatives.softmax import LOG_SOFTMAX, LOGSUMEXP, SOFTMAX
from ._kernels.weighted import needs_weighted_logsumexp, weighted_logsumexp
from ._platform import Array, eager_kernel
from ._validation import Prepared, prepare

__all__ = ["log_softmax", "logsumexp", "softmax"]


def _compiled(
    fn: Callable[..., Array],
    x: Array,
    where: object,
    axis: object,
    temperature: object,
    static: tuple[tuple[str, Any], ...],
) -> Callable[[Array, Array | None], Array] | None:
    """The compiled `fn` for an eager call on immutable arrays (see `eager_kernel`), or None.

    Only calls whose checks all happen while tracing qualify: a hashable axis, a Python
    temperature (bound in, so it is validated and its value 1 still skips the division) and
    a mask of x's own type. An array temperature must have its values checked, and a mask
    from another library must raise TypeError, so those calls run eagerly. `static` holds the
    keyword arguments bound into the kernel, built by the caller as a tuple: this runs on every
    call, and the kernel's call is all that eager JAX's peer (a jitted function) costs.
    """
    if type(temperature) not in (int, float) or not (where is None or type(where) is type(x)):
        return None
    if not (axis is None or type(axis) is int or type(axis) is tuple):
        return None
    # (eager_kernel answers None at once for arrays it does not compile for.)
    return eager_kernel(fn, x, static)


def _by_chunks(
    fn: Callable[..., Array], x: Array, p: Prepared, axis: object, **options: Any
) -> Array | None:
    """fn on each chunk of x, where x is chunked with whole slices (see `by_chunks`)."""
    arrays = {"where": p.where, "temperature": p.temperature}
    if "keepdims" not in options:
        whole = by_chunks(fn, x, p, arrays, {"axis": axis})
        return by_chunk_statistics(fn.__name__, x, p, axis) if whole is None else whole
    reduced = {"reduced": p.axes, "keepdims": options["keepdims"]}
    whole = by_chunks(fn, x, p, arrays, {"axis": axis, **options}, **reduced)
    if whole is not None:
        return whole
    out = by_chunk_statistics("logsumexp", x, p, axis)
    if out is None:
        return None
    return p.finish(out if options["keepdims"] else p.xp.squeeze(out, axis=p.axes))


def softmax(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    temperature: float | Array = 1.0,
    where: Array | None = None,
) -> Array:
    """Softmax along `axis`: ``exp(x_i / T) / sum_j exp(x_j / T)``.

    Parameters
    ----------
    x : array
        Real logits, of any library that array-api-compat supports; Python sequences are
        taken as NumPy arrays. Integer and boolean input is computed in the default float
        dtype; float16 and bfloat16 in float32, rounded once at the end.
    axis : int, tuple of int or None, optional
        The axes that make up one slice (None: all of them). Default -1.
    temperature : float or array, optional
        Positive, finite temperature T; an array gives one value per slice (it broadcasts to
        x with the reduced axes of length 1). Default 1.
    where : bool array, optional
        Entries to include; excluded entries get probability exactly 0 and are never read.

    Returns
    -------
    array
        Same namespace, device, shape and (floating) dtype as `x`. A slice with nothing in it
        (all -inf, all excluded, or empty) is all 0; a slice holding +inf splits the mass
        evenly between its +inf entries; a slice holding NaN is all NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> xpsoftmax.softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    return _normalised(softmax, SOFTMAX, x, axis, temperature, where)


def log_softmax(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    temperature: float | Array = 1.0,
    where: Array | None = None,
) -> Array:
    """Logarithm of the softmax: ``x_i / T - logsumexp(x) / T``, accurate near 0.

    Parameters are those of `softmax`. Excluded entries, and every entry of a slice with
    nothing in it, are -inf. Where one logit dominates, the result at it is
    ``-log1p(t)`` with t the sum of the other shifted exponentials, so it keeps its relative
    accuracy where ``x - max - log(sum)`` rounds to 0.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> float(xpsoftmax.log_softmax(np.array([0.0, -40.0]))[0])
    -4.248354255291589e-18
    """
    return _normalised(log_softmax, LOG_SOFTMAX, x, axis, temperature, where)


def _normalised(
    public: Callable[..., Array], rule: Any, x: Array, axis: Any, temperature: Any, where: Any
) -> Array:
    """`rule` (softmax's or log_softmax's) of `x`: through `public`'s compiled kernel where the
    library compiles eagerly (`_compiled`), else through the array-API path."""
    kernel = _compiled(
        public, x, where, axis, temperature, (("axis", axis), ("temperature", temperature))
    )
    if kernel is not None:
        return kernel(x, where)
    p = prepare(x, axis=axis, temperature=temperature, where=where)
    chunked = _by_chunks(public, x, p, axis)
    return p.finish(apply(rule, p)) if chunked is None else chunked


def logsumexp(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = -1,
    keepdims: bool = False,
    temperature: float | Array = 1.0,
    where: Array | None = None,
    b: Array | None = None,
    return_sign: bool = False,
) -> Array | tuple[Array, Array]:
    """The smooth maximum ``T * log(sum_j b_j exp(x_j / T))`` along `axis`.

    Parameters are those of `softmax`, and

    keepdims : bool, optional
        Keep the reduced axes, with length 1.
    b : array, optional
        Weights, broadcast with x (x may also broadcast to b's shape, as in SciPy). An entry
        whose weight is 0 takes no part, even where x is +-inf or NaN. Weights may be
        negative or complex.
    return_sign : bool, optional
        Return ``(log|sum|, sign)``. The sign is -1, 0 or 1 for real input (with
        ``log|0| = -inf``), and a complex number of modulus 1 (or 0) for complex input,
        whose log-magnitude is then real.

    x may be complex (here only; softmax and log_softmax reject it): the result is then
    ``T`` times the principal complex logarithm of the sum, imaginary part in (-pi, pi].
    These follow ``scipy.special.logsumexp`` in every case it defines.

    Returns
    -------
    array or (array, array)
        Excluded and -inf entries are ignored; a slice with nothing in it gives -inf, one
        holding +inf gives +inf, one holding NaN gives NaN. Without `return_sign`, a
        negative sum gives NaN. The dtype is x's, or the promotion of x's and b's.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> float(xpsoftmax.logsumexp(np.array([1e8, 1e8])) - 1e8)
    0.6931471824645996

    Weights, and the sign of a sum that may be negative:

    >>> round(float(xpsoftmax.logsumexp(np.array([0.0, 0.0]), b=np.array([2.0, 1.0]))), 14)
    1.09861228866811
    >>> xpsoftmax.logsumexp(np.array([1.0, 2.0]), b=np.array([1.0, -1.0]), return_sign=True)
    (array(1.54132485), array(-1.))

    Complex input gives the complex logarithm:

    >>> complex(np.round(xpsoftmax.logsumexp(np.array([0.0, 1j * np.pi / 2])), 12))  # log(1 + i)
    (0.34657359028+0.785398163397j)
    """
    if needs_weighted_logsumexp(x, b, return_sign):
        return weighted_logsumexp(
            x,
            axis=axis,
            keepdims=keepdims,
            temperature=temperature,
            where=where,
            b=b,
            return_sign=return_sign,
        )
    static = (("axis", axis), ("temperature", temperature), ("keepdims", keepdims))
    kernel = _compiled(logsumexp, x, where, axis, temperature, static)
    if kernel is not None:
        return kernel(x, where)
    p = prepare(x, axis=axis, temperature=temperature, where=where)
    chunked = _by_chunks(logsumexp, x, p, axis, keepdims=keepdims)
    if chunked is not None:
        return chunked
    out = apply(LOGSUMEXP, p)
    if not keepdims:
        out = p.xp.squeeze(out, axis=p.axes) if p.axes else out
    return p.finish(out)
