"""asv benchmarks: every xpsoftmax function beside its framework's own kernel.

Each benchmark is parametrized over the variant (backend, device, eager or compiled) and
``implementation`` ("xpsoftmax" or "peer"), so the published graphs put the two side by side
and their ratio can be read off. Parameters are the same on every machine; what cannot run
here (no GPU, no such dtype) raises NotImplementedError in ``setup`` with the reason, which asv
reports as skipped. Compilation and warm-up happen in ``setup``, outside the timing, and every
timed call waits for its result (JAX ``block_until_ready``, Dask ``persist``, CUDA sync).

The full cross product of every axis would be thousands of benchmarks, most of them telling
nothing new, so the grid is split: the reductions sweep sizes and axes in float32, and the
dtype sweep (float64, float16, bfloat16) runs at the vocabulary size along the last axis.
"""

from __future__ import annotations

from typing import Any

from .common import (
    AXES,
    DTYPES,
    IMPLEMENTATIONS,
    REDUCTIONS,
    SIZES,
    VARIANT_IDS,
    XPBenchmark,
    copy_case,
    cross_entropy_case,
    jacobian_case,
    reduction_case,
)


class Reductions(XPBenchmark):
    """softmax, log_softmax and logsumexp over sizes and axes, float32."""

    params = (list(VARIANT_IDS), list(REDUCTIONS), list(SIZES), list(AXES), list(IMPLEMENTATIONS))
    param_names = ("variant", "function", "size", "axis", "implementation")

    def setup(self, variant: str, function: str, size: str, axis: str, implementation: str) -> None:
        self.case = reduction_case(
            variant, function, implementation, SIZES[size], AXES[axis], "float32"
        )


class Dtypes(XPBenchmark):
    """softmax and log_softmax in every floating dtype, vocabulary size, last axis."""

    params = (list(VARIANT_IDS), ["softmax", "log_softmax"], list(DTYPES), list(IMPLEMENTATIONS))
    param_names = ("variant", "function", "dtype", "implementation")

    def setup(self, variant: str, function: str, dtype: str, implementation: str) -> None:
        self.case = reduction_case(
            variant, function, implementation, SIZES["vocabulary"], -1, dtype
        )


class Jacobians(XPBenchmark):
    """The closed-form Jacobian (64 x 256) and JVP (vocabulary) against autodiff."""

    params = (list(VARIANT_IDS), ["softmax_jacobian", "softmax_jvp"], list(IMPLEMENTATIONS))
    param_names = ("variant", "function", "implementation")

    def setup(self, variant: str, function: str, implementation: str) -> None:
        shape = (64, 256) if function == "softmax_jacobian" else SIZES["vocabulary"]
        self.case = jacobian_case(variant, function, implementation, shape)


class CrossEntropy(XPBenchmark):
    """Mean cross-entropy with class indices, against torch.nn.functional and peers."""

    params = (list(VARIANT_IDS), ["tiny", "vocabulary"], list(IMPLEMENTATIONS))
    param_names = ("variant", "size", "implementation")

    def setup(self, variant: str, size: str, implementation: str) -> None:
        self.case = cross_entropy_case(variant, implementation, SIZES[size])


class CopyBaseline(XPBenchmark):
    """A copy of the input: the memory-bandwidth floor for the throughput plots."""

    params = (list(VARIANT_IDS), list(SIZES))
    param_names = ("variant", "size")

    def setup(self, variant: str, size: str) -> None:
        self.case = copy_case(variant, SIZES[size])


class PeakMemory:
    """Peak resident memory of one softmax / log_softmax call (asv ``peakmem_``).

    asv reports the process's peak, which includes the input and the imports; the difference
    between the two implementations is what the call itself allocates.
    """

    params = (
        ["numpy", "torch", "jax"],
        ["softmax", "log_softmax"],
        ["square", "long_row"],
        list(IMPLEMENTATIONS),
    )
    param_names = ("variant", "function", "size", "implementation")
    timeout = 300

    def setup(self, variant: str, function: str, size: str, implementation: str) -> None:
        self.case = reduction_case(variant, function, implementation, SIZES[size], -1, "float32")

    def peakmem_call(self, *params: Any) -> None:
        self.case.run()
