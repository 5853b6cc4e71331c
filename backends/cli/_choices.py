"""What the command line's options accept, importable on a base install (no ``cli`` extra).

The parser shows these in its help; the subcommands' modules, which may need the extra, use the
same tuples, so that ``xpsoftmax --help`` never imports mpmath to list them.
"""

from __future__ import annotations

#: The functions ``xpsoftmax compare`` measures, in table order.
COMPARED_FUNCTIONS = (
    "softmax",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "softmax_jacobian",
    "log_softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
    "log_softmax_jvp",
    "log_softmax_vjp",
)
