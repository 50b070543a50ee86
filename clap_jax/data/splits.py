"""Which soundscapes seeds are for what: training, validation (model selection) and test.

Clip ``i`` of seed ``s`` is drawn from ``np.random.default_rng([s, i])`` only, so different seeds
are independent clip streams. A seed is used for one purpose only; the *test* seeds were used by
nothing during development (no training, no choice of λ, model, step or threshold) and give the
numbers the README labels "test". Validation numbers, where shown, are labelled as such.

==========  ======================================================================  ==========
seed        used by                                                                 role
==========  ======================================================================  ==========
0, 1        CLAP stages 1 and 2, the CNN14 classifier, L-MAC / LMAC-ZS decoders      training
10000       CLAP runs' own evaluation, λ and setting choices of ``sparse``           validation
10001       multi-event retrieval and event recall while developing ``sparse``       validation
20000       reference audio mean (``sparse.embed``), classifier / L-MAC validation   validation
25000       LMAC-ZS validation                                                        validation
30000       classifier test; concept-head training clips                              test / train
40000+i     beep + rain pairs while developing ``sparse.mixtures``                    validation
50000       L-MAC held-out evaluation                                                 test
70000       LMAC-ZS held-out evaluation                                               test
90000       single-event zero-shot / concept tables                                   test
90001       multi-event retrieval / event recall tables                               test
95000+i     beep + rain pairs (``sparse.mixtures --seed=95000``)                       test
==========  ======================================================================  ==========
"""
TRAIN = 0
VALIDATION = 10_000
VALIDATION_MULTI = 10_001
TEST = 90_000
TEST_MULTI = 90_001
TEST_PAIRS = 95_000
