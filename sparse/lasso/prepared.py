"""A dictionary prepared for ``nonneg_lasso``: on the devices, with its method's precomputation.

    prepare(C (c, d), method, dtype, n_devices, rho, gram) -> PreparedDictionary
        array   C in dtype, replicated over the 1-D "data" mesh of n_devices devices
        aux     fista / ista: (L = 2 ||C||_2^2, C C^T or None)
                admm:         (Q^-1, C C^T or None, rho)
                working_set:  (squared atom norms (c,), C C^T or None)

Made once and passed to every solve with that dictionary (bisection over lam, chunked
decompositions, sweeps, benchmarks), it is never recomputed; a plain array passed to
``nonneg_lasso`` is prepared for that call alone. The working-set method decides per solve
whether C C^T pays (it depends on the number of rows, ``sparse.lasso.driver``): with
``gram=None`` the object builds C C^T on the first solve that wants it and keeps it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sparse.lasso import full, problem, working_set


@functools.lru_cache(maxsize=None)
def mesh(n_devices):
    """The 1-D "data" mesh of the first n_devices devices: the mesh, the replicated sharding
    (dictionary, aux) and the row sharding (embeddings and everything per row)."""
    m = Mesh(np.asarray(jax.devices()[:n_devices]), ("data",))
    return m, NamedSharding(m, P()), NamedSharding(m, P("data"))


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedDictionary:
    """A (c, d) dictionary ready for ``nonneg_lasso`` (module docstring); made by :func:`prepare`.

    host: (c, d) the validated NumPy dictionary as given. array: (c, d) jax.Array in ``dtype``,
    replicated over ``mesh(n_devices)``. method, dtype, n_devices, rho: what it is prepared for.
    gram: whether the gradients use C C^T; for "working_set" None means "decided per solve".
    """

    host: np.ndarray = dataclasses.field(repr=False)
    array: jax.Array = dataclasses.field(repr=False)
    method: str
    dtype: np.dtype
    n_devices: int
    rho: float
    gram: bool | None
    _aux: tuple = dataclasses.field(repr=False)  # full methods: the aux; working_set: (norms2,)
    _grams: dict = dataclasses.field(default_factory=dict, repr=False)  # working_set: C C^T, once

    @property
    def shape(self) -> tuple[int, int]:
        return self.host.shape

    def aux(self, use_gram: bool | None = None):
        """The solver's precomputed pieces (module docstring). use_gram: "working_set" only,
        whether this solve takes its Gram rows from C C^T (built on first use, then kept)."""
        if self.method != "working_set":
            return self._aux
        if not use_gram:
            return self._aux[0], None
        if "gram" not in self._grams:
            self._grams["gram"] = working_set.gram_matrix(self.array)
        return self._aux[0], self._grams["gram"]


def prepare(dictionary, method: str = "working_set", *, dtype=None, n_devices: int | None = None,
            rho: float = 1.0, gram: bool | None = None) -> PreparedDictionary:
    """The dictionary C (c, d), concepts as rows, prepared for ``nonneg_lasso`` with ``method``.

    dtype: the solvers' dtype (default float32, or float64 for a float64 C with x64 enabled);
    embeddings are cast to it. n_devices: rows are sharded over the first n_devices devices
    (default all). rho: ADMM penalty. gram: use the (c, c) Gram matrix C C^T; None: when it is
    cheaper (fista / ista / admm: c <= 2 d; working_set: per solve, ``sparse.lasso.driver``).
    Raises ValueError for an unknown method, rho <= 0, or a dictionary that is not (c, d) with
    c >= 1, finite and below float32 overflow.
    """
    problem.check_method(method)
    C = problem.check_dictionary(dictionary)
    problem.check_rho(rho)
    return _prepare(C, method, problem.solver_dtype(C) if dtype is None else dtype,
                    len(jax.devices()) if n_devices is None else n_devices, rho, gram)


def _prepare(C, method, dtype, n_devices, rho, gram):
    """:func:`prepare` of a checked host dictionary C (c, d)."""
    dtype = np.dtype(dtype)
    if not 1 <= n_devices <= len(jax.devices()):
        raise ValueError(f"n_devices must be between 1 and {len(jax.devices())}, got {n_devices}")
    replicated = mesh(n_devices)[1]
    array = jax.device_put(C.astype(dtype), replicated)
    rho = float(rho)
    if method == "working_set":
        gram = None if gram is None else bool(gram)
        aux = (jax.device_put(working_set.squared_norms(C, dtype), replicated),)
    else:
        gram = C.shape[0] <= 2 * C.shape[1] if gram is None else bool(gram)  # one matmul per gradient
        aux = full.dictionary_aux(array, jnp.asarray(rho, dtype), method, gram)
    prepared = PreparedDictionary(C, array, method, dtype, n_devices, rho, gram, aux)
    if method == "working_set" and gram:
        prepared.aux(True)  # asked for: built now
    return prepared
