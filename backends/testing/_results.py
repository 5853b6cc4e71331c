"""A result against the reference's: its structure, the kind and precision of each entry's dtype,
its device, and its values.

Results are trees: tuples, lists and dicts of arrays, Python scalars and None, checked leaf by
leaf, each leaf named by its path (``[0]``, ``['mean']``; "" for a result that is one array). A
leaf's kind (bool, integer, real or complex floating) follows the reference's; its floating
precision is the one the function owes (`expected_precision`), and its values are compared
within tolerances of that precision, entry by entry.

NumPy is imported inside the functions: ``import xpsoftmax.testing`` imports no array library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from xpsoftmax.backends import Variant

#: Default relative tolerance per precision: about a hundred rounding errors of that dtype for
#: float32 and narrower, a few thousand for float64 (the float64 reference's own rounding).
DEFAULT_RTOL = {"float16": 5e-3, "bfloat16": 3e-2, "float32": 1e-5, "float64": 1e-12}

#: The largest finite value and the smallest normal one of each precision (bfloat16 has
#: float32's exponent range; NumPy has no bfloat16 to ask).
_RANGE = {
    "float16": (65504.0, 2.0**-14),
    "bfloat16": (3.3895313892515355e38, 2.0**-126),
    "float32": (3.4028234663852886e38, 2.0**-126),
    "float64": (1.7976931348623157e308, 2.0**-1022),
}

_SCALARS = (bool, int, float, complex)


def flatten(tree: Any, path: str = "") -> list[tuple[str, Any]]:
    """The leaves of `tree` (tuples, lists and dicts opened), each with its path."""
    if isinstance(tree, (tuple, list)):
        return [leaf for i, item in enumerate(tree) for leaf in flatten(item, f"{path}[{i}]")]
    if isinstance(tree, dict):
        return [leaf for k, item in tree.items() for leaf in flatten(item, f"{path}[{k!r}]")]
    return [(path, tree)]


def unflatten(tree: Any, leaves: dict[str, Any], path: str = "") -> Any:
    """`tree` with each leaf replaced by ``leaves[path]`` (None where `leaves` has no entry)."""
    if isinstance(tree, (tuple, list)):
        items = [unflatten(item, leaves, f"{path}[{i}]") for i, item in enumerate(tree)]
        return type(tree)(items) if type(tree) in (tuple, list) else tuple(items)
    if isinstance(tree, dict):
        return {k: unflatten(item, leaves, f"{path}[{k!r}]") for k, item in tree.items()}
    return leaves.get(path)


def kind_of(dtype_name: str) -> str:
    """ "bool", "integer", "real floating" or "complex floating" (the array API's kinds)."""
    if dtype_name == "bool":
        return "bool"
    if dtype_name.startswith(("int", "uint")):
        return "integer"
    if dtype_name.startswith("complex"):
        return "complex floating"
    return "real floating"


def dtype_name(x: Any) -> str:
    """A leaf's dtype as a plain name ("float32", "bfloat16", ...); a Python scalar's kind as
    NumPy would store it."""
    if isinstance(x, _SCALARS):
        return {bool: "bool", int: "int64", float: "float64", complex: "complex128"}[type(x)]
    return str(x.dtype).rpartition(".")[2]


def precision_of(dtype_name: str) -> str:
    """The real floating precision of a floating or complex dtype ("complex64" -> "float32")."""
    return {"complex64": "float32", "complex128": "float64"}.get(dtype_name, dtype_name)


def leaf_problems(
    v: Variant, path: str, got: Any, expected: Any, precision: tuple[str, str] | None
) -> tuple[list[str], list[str]]:
    """What is wrong with one leaf's type, and with its device: two lists of phrases.
    `precision` is the floating precision owed, and why (`expected_precision`)."""
    import array_api_compat

    where = f"result{path}"
    if expected is None or got is None:
        ok = got is None and expected is None
        return (
            [] if ok else [f"{where} is {_what(got)}, the reference's is {_what(expected)}"]
        ), []
    if isinstance(got, _SCALARS) and isinstance(expected, _SCALARS):
        got_kind, want_kind = kind_of(dtype_name(got)), kind_of(dtype_name(expected))
        same = got_kind == want_kind
        return (
            []
            if same
            else [f"{where} is a Python {type(got).__name__}, the reference's a {want_kind}"]
        ), []
    try:
        library = array_api_compat.array_namespace(got)
    except TypeError:
        library = None
    if library is not v.xp:
        return [f"{where} is {_what(got)}, not an array of {v.backend.name}"], []
    problems: list[str] = []
    got_name, want_kind = dtype_name(got), kind_of(dtype_name(expected))
    prefix = f"{where}: " if path else ""
    if kind_of(got_name) != want_kind:
        problems.append(f"{prefix}dtype {got_name}, expected a {want_kind} dtype (the reference's)")
    elif want_kind.endswith("floating") and precision and precision_of(got_name) != precision[0]:
        owed = precision[0] if want_kind == "real floating" else _complex(precision[0])
        problems.append(f"{prefix}dtype {got_name}, expected {owed} ({precision[1]})")
    device = v.backend.device_of(got)
    devices = [] if device == v.device else [f"{where} is on {device}, the input on {v.device}"]
    return problems, devices


def to_host(v: Variant, leaf: Any) -> Any:
    """A leaf on the host: a NumPy array for an array or a Python scalar, None for None. An
    array of another library than `v`'s (a NumPy array on torch) is read as NumPy reads it."""
    import array_api_compat
    import numpy as np

    if leaf is None:
        return None
    if isinstance(leaf, _SCALARS) or not array_api_compat.is_array_api_obj(leaf):
        return np.asarray(leaf)
    try:
        foreign = array_api_compat.array_namespace(leaf) is not v.xp
    except TypeError:
        foreign = True
    return np.asarray(leaf) if foreign else v.to_numpy(leaf)


def expected_precision(
    result_dtype: Any, input_dtype: str | None, v: Variant, reference_leaf: Any = None
) -> tuple[str, str] | None:
    """The precision a floating leaf owes, and why: `result_dtype` when given (a dtype, or
    "reference": `reference_leaf`'s), else the inputs' floating precision, else the variant's
    default floating dtype (results of integer inputs); None to accept any."""
    if isinstance(result_dtype, str) and result_dtype == "reference":
        if reference_leaf is None or isinstance(reference_leaf, _SCALARS):
            return None
        return precision_of(dtype_name(reference_leaf)), "the reference's"
    if result_dtype is not None:
        import numpy as np

        return precision_of(np.dtype(result_dtype).name), "result_dtype"
    if input_dtype is not None:
        return precision_of(input_dtype), "the input's"
    try:
        default = v.xp.__array_namespace_info__().default_dtypes()["real floating"]
    except (AttributeError, KeyError, TypeError):
        return None
    return dtype_name(v.xp.empty(0, dtype=default)), f"{v.backend.name}'s default"


def _complex(precision: str) -> str:
    return {"float32": "complex64", "float64": "complex128"}.get(precision, precision)


def compare(
    got: np.ndarray,
    expected: np.ndarray,
    *,
    precision: str,
    rtol: float,
    atol: float | None,
    slack: np.ndarray | None = None,
) -> str:
    """Why `got` is not `expected`, or "" when it is: entries of a bool or integer reference must
    be equal; floating ones within ``atol + rtol * |expected|`` each, NaN where NaN is expected,
    the same infinity where one is, and beyond `precision`'s largest finite value (an exact
    value that overflows it) its largest value or an infinity of the same sign. By default atol
    is rtol times the median magnitude of the nonzero finite expected entries (a large entry
    does not loosen the others), plus the precision's smallest normal number; `slack` adds a
    tolerance per entry (the reference's own uncertainty)."""
    import numpy as np

    if got.shape != expected.shape:
        return f"shape {got.shape}, the reference's {expected.shape}"
    if not np.issubdtype(expected.dtype, np.inexact):
        equal = np.asarray(got == expected)
        return _report(got, expected, equal, "are not equal")
    largest, tiny = _RANGE.get(precision, _RANGE["float64"])
    wide = np.complex128 if np.iscomplexobj(expected) or np.iscomplexobj(got) else np.float64
    g, e = got.astype(wide), expected.astype(wide)
    magnitude = np.abs(e)
    if atol is None:
        finite = magnitude[np.isfinite(magnitude) & (magnitude > 0)]
        atol = rtol * float(np.median(finite)) if finite.size else 0.0
    ok = np.ones(e.shape, dtype=bool)
    with np.errstate(all="ignore"):  # infinities and NaNs meet here on purpose
        tolerance = atol + tiny + rtol * magnitude + (0.0 if slack is None else slack)
        for part in (np.real, np.imag) if wide is np.complex128 else (np.asarray,):
            gp, ep = part(g), part(e)
            ok &= (
                (np.isnan(gp) & np.isnan(ep))
                | (np.isinf(ep) & (gp == ep))
                | ((np.abs(ep) > largest) & np.isfinite(ep) & (gp * np.sign(ep) >= largest))
                | (np.abs(gp - ep) <= tolerance)
            )
    return _report(got, expected, ok, f"differ beyond rtol={rtol:.3g}, atol={atol:.3g}")


def _report(got: np.ndarray, expected: np.ndarray, ok: np.ndarray, how: str) -> str:
    import numpy as np

    if ok.all():
        return ""
    index = tuple(int(i) for i in np.argwhere(~ok)[0]) if ok.ndim else ()
    return (
        f"{int((~ok).sum())} of {ok.size} entries {how}; at index {index}: "
        f"got {got[index].item()!r}, expected {expected[index].item()!r}"
    )


def _what(x: Any) -> str:
    if x is None:
        return "None"
    return f"a {type(x).__module__.partition('.')[0]}.{type(x).__name__}".replace("builtins.", "")


def map_arrays(tree: Any, fn: Callable[[Any], Any]) -> Any:
    """`tree` with `fn` applied to each leaf that is not None or a Python scalar."""
    leaves = {
        p: leaf if leaf is None or isinstance(leaf, _SCALARS) else fn(leaf)
        for p, leaf in flatten(tree)
    }
    return unflatten(tree, leaves) if isinstance(tree, (tuple, list, dict)) else leaves[""]
