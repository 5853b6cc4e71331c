import numpy as np
from entropy_package import softmax_entropy
from scipy import special

from xpsoftmax import testing


def reference(logits, axis=-1):
    p = special.softmax(logits, axis=axis)
    return special.entr(p).sum(axis=axis)


def test_entropy_on_every_framework():
    logits = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    testing.check_function(softmax_entropy, logits, reference=reference, grad=True)
    testing.check_function(softmax_entropy, logits.T.copy(), axis=0, reference=reference)


def test_uniform_logits_have_entropy_log_n(xp_variant):
    result = xp_variant.call(softmax_entropy, xp_variant.asarray(np.zeros((2, 5))))
    np.testing.assert_allclose(xp_variant.to_numpy(result), np.log(5))
