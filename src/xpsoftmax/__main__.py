"""``python -m xpsoftmax``: the command line lives with the backends, which may import frameworks."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the ``xpsoftmax`` command line."""
    from xpsoftmax.backends.compare import main as run

    return int(run(argv))


if __name__ == "__main__":
    raise SystemExit(main())
