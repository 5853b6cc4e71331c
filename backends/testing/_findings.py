"""What a check found, and how a verdict line tells it.

A verdict line reads ``<variant>: <check>: <what happened>``; a message of several lines (an
exception's whole message) continues on lines indented by four spaces. An exception is told by
its type, its whole message, and the last frame of the traceback that is the user's code, not a
framework's, Python's or the toolkit's own.
"""

from __future__ import annotations

import dataclasses
import os
import sysconfig
import traceback
import warnings

#: The checks, in the order they run on each variant.
CHECKS = (
    "call",
    "laziness",
    "devices",
    "types",
    "warnings",
    "mutation",
    "values",
    "gradients",
)

#: Packages whose frames are never the user's: the frameworks, the layers between them and the
#: user's code, and the toolkit itself. The library under test is the user's, whatever it is.
_NOT_USER = (
    "array_api_compat",
    "array_api_strict",
    "cupy",
    "cupyx",
    "dask",
    "jax",
    "jaxlib",
    "numpy",
    "torch",
    "xpsoftmax.backends",
    "xpsoftmax.testing",
)
_STDLIB = os.path.join(os.path.realpath(sysconfig.get_paths()["stdlib"]), "")
#: The folder of xpsoftmax.backends (the adapters and this toolkit).
_TOOLKIT = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check that failed on one variant."""

    variant: str
    check: str
    detail: str

    def line(self) -> str:
        """The verdict line(s): continuation lines indented by four spaces."""
        first, *rest = self.detail.splitlines() or [""]
        return "\n".join([f"{self.variant}: {self.check}: {first}", *("    " + r for r in rest)])


def describe(err: BaseException) -> str:
    """``Type: whole message (at file:line in function)``, the place the user's last frame."""
    message = str(err).strip()
    if not message and err.__cause__ is not None:
        message = f"(from {type(err.__cause__).__name__}: {str(err.__cause__).strip()})"
    where = user_frame(err.__traceback__)
    return f"{type(err).__name__}: {message}" + (f" (at {where})" if where else "")


def describe_warning(caught: warnings.WarningMessage) -> str:
    """``Category: whole message (at file:line)``; a warning whose frame is the toolkit's own
    came straight from what fn called in C (a NumPy ufunc fn is), and is placed at the call."""
    inside = os.path.realpath(caught.filename).startswith(_TOOLKIT)
    where = "the call of fn" if inside else f"{_short(caught.filename)}:{caught.lineno}"
    return f"{caught.category.__name__}: {str(caught.message).strip()} (at {where})"


def user_frame(tb: object) -> str:
    """``file:line in function`` of the last frame of traceback `tb` that is user code, or ""."""
    found = ""
    for frame, lineno in traceback.walk_tb(tb):  # type: ignore[arg-type]
        if is_user_code(frame.f_code.co_filename, frame.f_globals.get("__name__", "")):
            found = f"{_short(frame.f_code.co_filename)}:{lineno} in {frame.f_code.co_name}"
    return found


def is_user_code(filename: str, module: str) -> bool:
    """Whether a frame of `module` in `filename` is the user's: not Python's own, a framework's,
    or the toolkit's."""
    if any(module == p or module.startswith(p + ".") for p in _NOT_USER):
        return False
    path = os.path.realpath(filename)
    # Installed packages may live below the standard library's directory (a system Python).
    return not path.startswith(_STDLIB) or any(
        d in path for d in ("site-packages", "dist-packages")
    )


def _short(filename: str) -> str:
    """A path as a reader finds it: from the package directory on for an installed package
    (``scipy/special/_logsumexp.py``), else relative to the working directory when below it."""
    path = os.path.realpath(filename)
    for installed in ("site-packages", "dist-packages"):
        marker = os.sep + installed + os.sep
        if marker in path:
            return path.rsplit(marker, 1)[1]
    here = os.path.join(os.getcwd(), "")
    return path[len(here) :] if path.startswith(here) else filename
