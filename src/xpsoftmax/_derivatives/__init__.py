"""The derivative rules and their attachment to each framework's autodiff.

`rule` holds what every rule is made of (its records and interface), `softmax` and
`cross_entropy` the rules, `registry` the one list of them, and `attach` hands them to the
mechanism an array's library offers (JAX's ``custom_jvp``, PyTorch's ``autograd.Function``),
found by capability. They import the kernels, the validator and the platform layer only.
"""
