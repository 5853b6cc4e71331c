"""Warnings a framework emits about its own workings, whatever the code it runs.

Each adapter lists its framework's (`Backend.internal_warnings`), each with the reason it says
nothing about the code under test. One is recognised by what it is: its category, the start of
its message, and the package whose code issued it (a folder of that name on the issuing file's
path, so that the copies of array-api-compat that SciPy and scikit-learn vendor count too). So a
warning with the same text raised by the user's own code is never taken for one, and a notice
the framework gives once per process is recognised whichever call brought it out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import warnings
from collections.abc import Iterable, Iterator


@dataclasses.dataclass(frozen=True)
class InternalWarning:
    """One kind of warning a framework raises about itself, and why it is not a finding.

    Examples
    --------
    >>> from xpsoftmax import backends
    >>> notice = backends.get("torch").internal_warnings[0]
    >>> notice.package, notice.category.__name__
    ('torch', 'UserWarning')
    """

    #: The warning's class (or a base class of it).
    category: type[Warning]
    #: A regular expression the message starts with.
    message: str
    #: The package whose code issues it ("torch", "jax", "array_api_compat").
    package: str
    #: Why it says nothing about the code under test.
    reason: str

    def __str__(self) -> str:
        return f"{self.category.__name__} from {self.package}: {self.message!r}: {self.reason}"

    def matches(self, caught: warnings.WarningMessage) -> bool:
        """Whether `caught` is this warning, issued from a file of the package."""
        return (
            issubclass(caught.category, self.category)
            and re.match(self.message, str(caught.message)) is not None
            and _inside(caught.filename, self.package)
        )

    @contextlib.contextmanager
    def ignored(self) -> Iterator[None]:
        """A context in which this warning, issued from the package's modules (or a vendored
        copy's: ``sklearn.externals.array_api_compat``), is not shown."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=self.message,
                category=self.category,
                module=rf"(.*\.)?{re.escape(self.package)}(\.|$)",
            )
            yield


@contextlib.contextmanager
def ignoring(entries: Iterable[InternalWarning]) -> Iterator[None]:
    """A context in which none of `entries` is shown (each only from its own package)."""
    with contextlib.ExitStack() as stack:
        for entry in entries:
            stack.enter_context(entry.ignored())
        yield


def _inside(filename: str, package: str) -> bool:
    """Whether `filename` lies in a folder called `package` (the package or a vendored copy)."""
    return package in os.path.normpath(filename).split(os.sep)[:-1]
