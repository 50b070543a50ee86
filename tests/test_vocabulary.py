"""Vocabulary files, the shipped vocabularies and the three construction recipes (no model needed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sparse import vocabulary
from sparse import vocabulary_recipes as recipes
from sparse import vocabulary_tags as tagging


def test_format_round_trip_comments_and_counts(tmp_path):
    v = vocabulary.parse("# a comment\n\ndog barking\t12\nrain\t7\n  \nsiren\t0\n", "x.txt")
    assert v.concepts == ("dog barking", "rain", "siren") and v.counts == (12, 7, 0)
    vocabulary.write(v, str(tmp_path / "v.txt"), header=["made here"])
    text = (tmp_path / "v.txt").read_text()
    assert text.startswith("# made here\n")
    back = vocabulary.read(str(tmp_path / "v.txt"))
    assert back.concepts == v.concepts and back.counts == v.counts
    plain = vocabulary.parse("beep\nhigh beep\n")
    assert plain.counts is None and plain.top(1).concepts == ("beep",)
    assert vocabulary.as_vocabulary(["a", "b"]).concepts == ("a", "b")
    assert v.digest == vocabulary.parse("dog barking\nrain\nsiren\n").digest     # counts do not change the key
    assert v.digest != plain.digest


@pytest.mark.parametrize("text,match", [
    ("", "empty vocabulary"),
    ("# only comments\n\n", "empty vocabulary"),
    ("rain\t3\nrain\t4\n", "duplicate concept 'rain'"),
    ("rain\t3\nbeep\n", "either every concept has a count or none"),
    ("rain\tmany\n", r"v.txt:1: count 'many' is not an integer"),
    ("rain\t1\nbeep\t-2\n", r"v.txt:2: count -2 is negative"),
    ("\t5\n", r"v.txt:1: empty concept"),
])
def test_bad_vocabulary_files_are_named(text, match):
    with pytest.raises(ValueError, match=match):
        vocabulary.parse(text, "v.txt")


def test_empty_or_bad_vocabulary_objects():
    with pytest.raises(ValueError, match="empty vocabulary"):
        vocabulary.Vocabulary(())
    with pytest.raises(ValueError, match="duplicate"):
        vocabulary.Vocabulary(("a", "a"))
    with pytest.raises(ValueError, match="non-empty string"):
        vocabulary.Vocabulary(("a", " "))
    with pytest.raises(FileNotFoundError, match="neither a vocabulary file nor a shipped vocabulary"):
        vocabulary.load("no-such-vocabulary")


def test_shipped_vocabularies():
    assert vocabulary.shipped() == ["audioset", "esc50", "soundscapes", "urbansound8k"]
    sizes = {name: len(vocabulary.load(name)) for name in vocabulary.shipped()}
    assert sizes == {"audioset": 724, "esc50": 50, "soundscapes": 328, "urbansound8k": 10}
    esc = vocabulary.load("esc50")
    assert "sea waves" in esc.concepts and "hand saw" in esc.concepts
    assert vocabulary.load("urbansound8k").concepts[0] == "air conditioner"
    # The soundscapes file is what the generator makes from the class table today.
    assert vocabulary.load("soundscapes").concepts == recipes.soundscapes_vocabulary().concepts
    sound = vocabulary.load("soundscapes").concepts
    assert {"beep", "rain", "high beep", "raindrops", "tones", "traffic", "high-pitched"} <= set(sound)
    # The AudioSet-derived file carries its credit and CC BY-SA 4.0 licence.
    head = open(os.path.join(vocabulary.VOCABULARY_DIR, "audioset.txt")).read().split("\nhuman sounds\n")[0]
    assert "AudioSet ontology" in head and "CC BY-SA 4.0" in head and "LICENSE-audioset.md" in head
    lic = open(os.path.join(vocabulary.VOCABULARY_DIR, "LICENSE-audioset.md")).read()
    assert "Creative Commons Attribution-ShareAlike 4.0" in lic and "Changes made" in lic


def test_audioset_vocabulary_regenerates_from_the_ontology():
    """The shipped ontology (unchanged, credited in LICENSE-audioset.md) gives the shipped audioset.txt."""
    assert recipes.AUDIOSET_ONTOLOGY == os.path.join(vocabulary.VOCABULARY_DIR, "audioset_ontology.json")
    v = recipes.audioset_vocabulary(recipes.AUDIOSET_ONTOLOGY)
    assert v.concepts == vocabulary.load("audioset").concepts
    assert {"male speech", "man speaking", "dog", "bark", "rain", "UK garage", "a capella"} <= set(v.concepts)


def test_root_merges_inflections():
    same = [("cough", "coughs", "coughing", "coughed"), ("bike", "bikes", "biking"), ("glass", "glasses"),
            ("cry", "cries", "crying", "cried"), ("run", "running"), ("string", "strings"), ("buzz", "buzzing"),
            ("bus", "buses"), ("beep", "beeps", "beeping", "beeped"), ("drip", "drips", "dripping")]
    for group in same:
        assert len({tagging.root(w) for w in group}) == 1, group
    assert len({tagging.root(w) for w in ("rain", "ring", "run", "bee", "bed", "sing")}) == 6
    assert tagging.root("dies") == tagging.root("die") and tagging.root("is") == "is"


def test_tag_count_formats(tmp_path):
    (tmp_path / "t.tsv").write_text("dog\t5\nrain\t3\n")
    (tmp_path / "t.csv").write_text("tag,count\ndog,5\nrain,3\n")
    (tmp_path / "t.json").write_text(json.dumps({"dog": 5, "rain": 3}))
    clips = {"1": {"tags": ["dog", "rain", "dog"]}, "2": {"tags": ["dog"]}, "3": {"tags": ["Rain"]}}
    (tmp_path / "fsd.json").write_text(json.dumps(clips))
    (tmp_path / "plain.txt").write_text("dog\nrain\ndog\n")
    assert tagging.read_tag_counts(str(tmp_path / "t.tsv")) == {"dog": 5, "rain": 3}
    assert tagging.read_tag_counts(str(tmp_path / "t.csv")) == {"dog": 5, "rain": 3}
    assert tagging.read_tag_counts(str(tmp_path / "t.json")) == {"dog": 5, "rain": 3}
    assert tagging.read_tag_counts(str(tmp_path / "fsd.json")) == {"dog": 2, "rain": 1, "Rain": 1}
    assert tagging.read_tag_counts(str(tmp_path / "plain.txt")) == {"dog": 2, "rain": 1}
    (tmp_path / "bad.json").write_text(json.dumps({"1": {"title": "x"}}))
    with pytest.raises(ValueError, match="bad.json: clip '1' has no 'tags'"):
        tagging.read_tag_counts(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        tagging.read_tag_counts(str(tmp_path / "missing.tsv"))


TAGS = {"Dog": 50, "dog": 10, "field_recording": 40, "rain": 45, "coughing": 30, "cough": 20, "coughs": 5,
        "808": 35, "a": 33, "x": 31, "raiin": 29, "shit": 28, "Ambience!": 27, "猫": 26, "birds": 15, "bird": 14,
        "44100hz": 13, "engine": 12, "motor": 11}
WORDS = {"dog", "field", "recording", "rain", "cough", "ambience", "bird", "engine", "motor", "a", "x"}


def test_baseline_cleans_merges_and_ranks():
    v = recipes.baseline(TAGS, size=100)
    assert v.concepts[:3] == ("dog", "rain", "field recording")                # Dog + dog merged: 60
    assert v.counts[0] == 60
    assert "shit" not in v.concepts and "猫" not in v.concepts                  # expletive, not English
    assert "ambience" in v.concepts and "808" in v.concepts and "raiin" in v.concepts   # baseline keeps these
    assert list(v.counts) == sorted(v.counts, reverse=True)
    assert len(recipes.baseline(TAGS, size=4)) == 4


def test_pruned_drops_numeric_one_letter_misspelled_and_merges_roots():
    v = recipes.pruned(TAGS, WORDS, size=100, synonyms={"motor": "engine"})
    c = dict(zip(v.concepts, v.counts))
    assert c["coughing"] == 55 and "cough" not in c and "coughs" not in c       # one root, counts summed
    assert c["birds"] == 29 and "bird" not in c                                 # named by its most frequent form
    assert c["engine"] == 23 and "motor" not in c                               # listed synonym
    for gone in ("808", "44100hz", "a", "x", "raiin", "shit"):
        assert gone not in c
    assert c["dog"] == 60 and c["field recording"] == 40
    with pytest.raises(ValueError, match="known words is empty"):
        recipes.pruned(TAGS, set())


def test_kmeans_and_clustered_recipe():
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:3] * 5
    tags = {f"tag{i}": 100 - i for i in range(30)}
    vectors = {f"tag{i}": centres[i % 3] + 0.3 * rng.standard_normal(8) for i in range(30)}
    vectors["tag0"], vectors["tag1"], vectors["tag2"] = centres[0], centres[1], centres[2]   # exact centres
    embed = lambda names: np.stack([vectors[n] for n in names])
    v = recipes.clustered(tags, embed, size=3, candidates=30, seed=0)
    assert set(v.concepts) == {"tag0", "tag1", "tag2"}
    assert sum(v.counts) == sum(tags.values())                                   # members' counts summed
    cents, assign = recipes.kmeans(np.stack([vectors[t] for t in tags]), 3, seed=1)
    assert len(set(assign[0::3])) == len(set(assign[1::3])) == len(set(assign[2::3])) == 1
    with pytest.raises(ValueError, match="fewer than size"):
        recipes.clustered(tags, embed, size=40)


def test_tokenizer_words(roberta_tokenizer_dir):
    from clap_jax.tokenizer import Tokenizer
    words = tagging.tokenizer_words(Tokenizer.load(roberta_tokenizer_dir, 16))
    assert {"rain", "dog", "bell"} <= words and all(w.isalpha() and w.islower() for w in words)


def test_cli_baseline_and_pruned(tmp_path):
    (tmp_path / "tags.json").write_text(json.dumps(TAGS))
    (tmp_path / "words.txt").write_text("\n".join(sorted(WORDS)) + "\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    for recipe, extra in (("baseline", []), ("pruned", [f"--words={tmp_path / 'words.txt'}"])):
        out = tmp_path / f"{recipe}.txt"
        proc = subprocess.run([sys.executable, "-m", "sparse.build_vocabulary", f"--recipe={recipe}",
                               f"--tags={tmp_path / 'tags.json'}", "--size=5", f"--out={out}", *extra],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        v = vocabulary.read(str(out))
        assert len(v) == 5 and v.concepts[0] == "dog" and v.counts[0] == 60
        assert open(out).readline().startswith(f"# {recipe} vocabulary from tags.json")
    proc = subprocess.run([sys.executable, "-m", "sparse.build_vocabulary", "--recipe=baseline",
                           f"--out={tmp_path / 'x.txt'}"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0 and "needs --tags" in proc.stderr


def test_cli_regenerates_the_shipped_audioset_file(tmp_path):
    """``--recipe=audioset`` on the shipped ontology writes the shipped audioset.txt byte for byte."""
    out = tmp_path / "audioset.txt"
    proc = subprocess.run([sys.executable, "-m", "sparse.build_vocabulary", "--recipe=audioset",
                           f"--tags={recipes.AUDIOSET_ONTOLOGY}", f"--out={out}"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes() == open(os.path.join(vocabulary.VOCABULARY_DIR, "audioset.txt"), "rb").read()
