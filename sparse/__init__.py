"""Sparse nonnegative concept decomposition: min_{w>=0} ||C^T w - z||^2 + lam ||w||_1.

See sparse/lasso/problem.py for the conventions (rows of C are concepts; the squared error is
not halved, so sklearn alpha = lam / (2 d) and SPAMS lambda1 = lam / 2). The decompose
function itself is ``sparse.decompose.decompose`` (the module name belongs to
``python -m sparse.decompose``).
"""

from sparse.decompose import Decomposition, intervene, recompose, top_concepts
from sparse.dictionary import ConceptDictionary, audio_mean, build as build_dictionary
from sparse.lasso import METHODS, LassoResult, PreparedDictionary, kkt_residual, nonneg_lasso, objective, prepare
from sparse.sparsity import lambda_for_l0
from sparse.vocabulary import Vocabulary, load as load_vocabulary

__all__ = ["METHODS", "ConceptDictionary", "Decomposition", "LassoResult", "PreparedDictionary", "Vocabulary",
           "audio_mean", "build_dictionary", "intervene", "kkt_residual", "lambda_for_l0", "load_vocabulary",
           "nonneg_lasso", "objective", "prepare", "recompose", "top_concepts"]
