"""Sparse nonnegative concept decomposition: min_{w>=0} ||C^T w - z||^2 + lam ||w||_1.

See sparse/solvers.py for the conventions (rows of C are concepts; the squared error is
not halved, so sklearn alpha = lam / (2 d) and SPAMS lambda1 = lam / 2).
"""

from sparse.solvers import METHODS, LassoResult, kkt_residual, nonneg_lasso, objective
from sparse.sparsity import lambda_for_l0

__all__ = ["METHODS", "LassoResult", "kkt_residual", "lambda_for_l0", "nonneg_lasso",
           "objective"]

# Vocabularies, concept dictionaries, decomposition API (the decompose function itself is
# sparse.decompose.decompose: the module name belongs to `python -m sparse.decompose`).
from sparse.vocabulary import Vocabulary, load as load_vocabulary  # noqa: E402
from sparse.dictionary import ConceptDictionary, audio_mean, build as build_dictionary  # noqa: E402
from sparse.decompose import Decomposition, intervene, recompose, top_concepts  # noqa: E402

__all__ += ["ConceptDictionary", "Decomposition", "Vocabulary", "audio_mean", "build_dictionary", "intervene",
            "load_vocabulary", "recompose", "top_concepts"]
