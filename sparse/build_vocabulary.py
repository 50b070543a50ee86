r"""Builds concept vocabularies: the paper's three recipes on a tag-frequency file, and the
shipped vocabularies.

    # baseline: top-N cleaned tags by frequency (arXiv 2504.14076, "baseline vocabulary")
    python -m sparse.build_vocabulary --recipe=baseline --tags=dev_clips_info_FSD50K.json \
        --size=2000 --out=vocab/fsd50k_baseline.txt
    # pruned: no misspelled / numeric / one-letter tags, shared roots merged, counts summed
    python -m sparse.build_vocabulary --recipe=pruned --tags=tags.tsv --words=/usr/share/dict/words \
        --candidates=10000 --size=2000 --out=vocab/pruned.txt
    # clustered: k-means (k = size) on the CLAP text embeddings of the candidates
    python -m sparse.build_vocabulary --recipe=clustered --tags=tags.tsv --model=converted/msclap-2023 \
        --candidates=10000 --size=2000 --out=vocab/clustered.txt
    # the shipped files (sparse/vocabularies/; the AudioSet ontology is shipped there too)
    python -m sparse.build_vocabulary --recipe=audioset --tags=sparse/vocabularies/audioset_ontology.json \
        --out=sparse/vocabularies/audioset.txt
    python -m sparse.build_vocabulary --recipe=soundscapes --out=sparse/vocabularies/soundscapes.txt

Tag-frequency file formats, cleaning and word roots: :mod:`sparse.vocabulary_tags`. The recipes
(baseline, pruned, clustered, and the shipped audioset and soundscapes files):
:mod:`sparse.vocabulary_recipes`. This module is the command.
"""
from __future__ import annotations

import logging
import os

from sparse.vocabulary import write
from sparse.vocabulary_recipes import AUDIOSET_HEADER, SOUNDSCAPES_HEADER, audioset_vocabulary, baseline, \
    clustered, pruned, soundscapes_vocabulary
from sparse.vocabulary_tags import read_synonyms, read_tag_counts, read_words, tokenizer_words

log = logging.getLogger(__name__)

RECIPES = ("baseline", "pruned", "clustered", "audioset", "soundscapes")


def _define_flags():
    from absl import flags
    flags.DEFINE_enum("recipe", None, list(RECIPES), "What to build.")
    flags.DEFINE_string("tags", None, "Tag-frequency file (baseline/pruned/clustered) or the AudioSet "
                        "ontology.json (audioset; shipped as sparse/vocabularies/audioset_ontology.json).")
    flags.DEFINE_string("out", None, "Vocabulary file to write.")
    flags.DEFINE_integer("size", 2000, "Concepts to keep (k of k-means for clustered).")
    flags.DEFINE_integer("candidates", 10000, "Most frequent cleaned tags considered by pruned/clustered.")
    flags.DEFINE_string("words", None, "Word list for the misspelling filter of pruned; default: the "
                        "whole-word tokens of --model's tokenizer.")
    flags.DEFINE_string("synonyms", None, "Optional 'canonical: synonym, ...' file for pruned.")
    flags.DEFINE_string("exclude", None, "Optional file of more words to drop (one a line).")
    flags.DEFINE_string("model", "soundscapes-small", "Model (clustered: its text encoder; pruned: its "
                        "tokenizer's words when --words is not given).")
    flags.DEFINE_string("cache_dir", None, "Concept-embedding cache (default: see sparse.dictionary).")
    flags.DEFINE_integer("seed", 0, "k-means seed.")
    flags.DEFINE_integer("batch_size", 256, "Texts per text-encoder batch.")


def main(argv):
    del argv
    from absl import flags
    FLAGS = flags.FLAGS
    logging.getLogger().setLevel(logging.INFO)
    recipe = FLAGS.recipe
    exclude = frozenset()
    if FLAGS.exclude:
        exclude = frozenset(read_words(FLAGS.exclude))
    if recipe == "soundscapes":
        vocab, header = soundscapes_vocabulary(), SOUNDSCAPES_HEADER
    elif recipe == "audioset":
        if not FLAGS.tags:
            raise app_error("--recipe=audioset needs --tags=PATH/ontology.json")
        vocab, header = audioset_vocabulary(FLAGS.tags), AUDIOSET_HEADER
    else:
        if not FLAGS.tags:
            raise app_error(f"--recipe={recipe} needs --tags=FILE (a tag-frequency file)")
        raw = read_tag_counts(FLAGS.tags)
        header = (f"{recipe} vocabulary from {os.path.basename(FLAGS.tags)} ({len(raw)} raw tags): "
                  f"python -m sparse.build_vocabulary --recipe={recipe} --size={FLAGS.size}"
                  + (f" --candidates={FLAGS.candidates}" if recipe != "baseline" else ""),)
        if recipe == "baseline":
            vocab = baseline(raw, FLAGS.size, exclude)
        elif recipe == "pruned":
            if FLAGS.words:
                words = read_words(FLAGS.words)
            else:
                import clap_jax
                words = tokenizer_words(clap_jax.load(FLAGS.model).tokenizer)
                log.info("known words: %d whole-word tokens of %s's tokenizer", len(words), FLAGS.model)
            synonyms = read_synonyms(FLAGS.synonyms) if FLAGS.synonyms else None
            vocab = pruned(raw, words, FLAGS.size, FLAGS.candidates, synonyms, exclude)
        else:
            import clap_jax
            from sparse import dictionary
            model = clap_jax.load(FLAGS.model)
            embed = lambda tags: dictionary.encode_texts(model, tags, FLAGS.batch_size, FLAGS.cache_dir,
                                                         progress=True)
            vocab = clustered(raw, embed, FLAGS.size, FLAGS.candidates, FLAGS.seed, exclude)
            header += (f"k-means seed {FLAGS.seed}, text encoder of {FLAGS.model}",)
    write(vocab, FLAGS.out, header)
    print(f"{FLAGS.out}: {len(vocab)} concepts" + (f", top: {', '.join(vocab.concepts[:8])}"))


def app_error(message: str):
    from absl import app
    return app.UsageError(message)


if __name__ == "__main__":
    from absl import flags
    from clap_jax import runtime
    _define_flags()
    flags.mark_flags_as_required(["recipe", "out"])
    runtime.run(main)
