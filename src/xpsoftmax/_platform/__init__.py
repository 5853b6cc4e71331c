"""The platform layer: every question the library asks of an array's library, as a capability.

Namespaces and devices (`namespaces`, the one module that imports array-api-compat), whether
values can be read now (`tracing`), autodiff (`autodiff`), in-place updates (`updates`),
eager compilation (`compilation`) and installed versions against the bounds our metadata states
(`versions`). Each is phrased as a question about an array ("is it lazy?",
"may we update it in place?"), never as a framework's name. Everything above imports from here.
"""

from .autodiff import (
    block_map,
    block_scan,
    conditional,
    derivative_mechanism,
    fixed_loop,
    has_forward_tangent,
    records_gradients,
    rematerialiser,
)
from .chunks import Chunked, ChunkMap, chunk_map, chunks_of
from .compilation import eager_kernel
from .namespaces import (
    Array,
    Namespace,
    array_device,
    array_namespace,
    as_array,
    namespace_of,
    on_host,
    ready_compat_modules,
    replicated,
    shards_along_first_axis,
    whole_product,
)
from .precision import narrow_products
from .tracing import (
    all_below_now,
    is_compiling,
    may_warn_on_overflow,
    surely_false,
    surely_true,
    values_are_known,
)
from .updates import (
    accumulating_product,
    can_update_in_place,
    no_updates_in_place,
    sets_at_integer_indices,
    writes_into_out,
)
from .versions import require_extra

__all__ = [
    "Array",
    "ChunkMap",
    "Chunked",
    "Namespace",
    "accumulating_product",
    "all_below_now",
    "array_device",
    "array_namespace",
    "as_array",
    "block_map",
    "block_scan",
    "can_update_in_place",
    "chunk_map",
    "chunks_of",
    "conditional",
    "derivative_mechanism",
    "eager_kernel",
    "fixed_loop",
    "has_forward_tangent",
    "is_compiling",
    "may_warn_on_overflow",
    "namespace_of",
    "narrow_products",
    "no_updates_in_place",
    "on_host",
    "ready_compat_modules",
    "records_gradients",
    "rematerialiser",
    "replicated",
    "require_extra",
    "sets_at_integer_indices",
    "shards_along_first_axis",
    "surely_false",
    "surely_true",
    "values_are_known",
    "whole_product",
    "writes_into_out",
]
