"""``python -m xpsoftmax``: the command line lives with the backends, which may import frameworks."""

from __future__ import annotations

import sys

#: What the ``cli`` extra installs. The ``xpsoftmax`` command comes with the base package, so
#: without the extra it must say what to install rather than show an import traceback.
CLI_EXTRA = frozenset({"mpmath", "scipy", "tqdm", "matplotlib"})


def main(argv: list[str] | None = None) -> int:
    """Run the ``xpsoftmax`` command line; exit status 2 when the ``cli`` extra is missing."""
    try:
        from xpsoftmax.backends.cli.parser import main as run

        return int(run(argv))
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in CLI_EXTRA:
            raise
        print(
            f"xpsoftmax: error: the command line needs {missing}, which is not installed; "
            'install xpsoftmax[cli] (pip install "xpsoftmax[cli]")',
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
