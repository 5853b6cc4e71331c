"""The kernels: the shared math, written once against the array API and free of autodiff.

`normalise` (shift, scale, exponentiate and sum along the reduced axes), `arithmetic`
(division by a temperature, power-of-two scaling, in-place reuse of our own temporaries),
`indexing` (one entry per slice), `centring` (``v - <s, v>`` and its transpose), `weighted`
(logsumexp with weights, a sign or complex input), and `blocks` and `class_blocks`
(linear_cross_entropy a block of tokens, or of classes, at a time). They import the platform
layer and the validator only.
"""
