"""train.clap: texts with hard negatives, the contrastive loss with negatives, fine-tuning init."""
import random

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from clap_jax import checkpoint
from clap_jax.data import soundscapes as S
from configs import clap_soundscapes
from train import clap as train_clap


@pytest.fixture(scope="module")
def clips():
    return S.generate(5, 60, duration=2.0, stft=None)


def _tag_classes(text: str) -> list[str]:
    """The classes of a tag list (each tag names exactly one class)."""
    owners = {t: c.id for c in S.CLASSES for t in c.tags}
    return sorted(owners[t] for t in text.split(", "))


def test_tags_name_one_class_each():
    owners = {}
    for c in S.CLASSES:
        for t in c.tags:
            assert owners.setdefault(t, c.id) == c.id, (t, owners[t], c.id)
    assert S.get_class("high_beep").tags[:2] == ("high beep", "high-pitched beep")
    with pytest.raises(ValueError, match="unknown background 'moon'"):
        S.caption_for(random.Random(0), [], "moon")


def test_edited_events_differ_by_exactly_one_class(clips):
    r = random.Random(0)
    dropped = added = 0
    for clip in clips:
        for _ in range(5):
            before = {e.class_id for e in clip.events}
            after = [e.class_id for e in train_clap.edited_events(clip, r)]
            assert len(after) == len(set(after)) and len(before ^ set(after)) == 1
            dropped += len(after) < len(before)
            added += len(after) > len(before)
            assert all(0 <= e.onset < e.offset <= clip.duration for e in train_clap.edited_events(clip, r))
    assert dropped > 20 and added > 20


def test_caption_pairs_describe_the_clip_and_its_edit(clips):
    r = random.Random(1)
    tags = sentences = 0
    for clip in clips:
        for _ in range(4):
            state = r.getstate()
            positive, negative = train_clap.caption_pair(clip, r, tag_prob=0.5)
            r2 = random.Random()
            r2.setstate(state)
            edited = sorted(e.class_id for e in train_clap.edited_events(clip, r2))
            if positive in clip.captions:
                sentences += 1
                assert negative not in clip.captions
                for c in edited:
                    assert any(p in negative.lower() for p in S.get_class(c).phrases), (negative, c)
            else:
                tags += 1
                assert _tag_classes(positive) == sorted(clip.labels)
                assert _tag_classes(negative) == edited
    assert tags > 60 and sentences > 60
    assert all(train_clap.caption_pair(c, r, tag_prob=0.0)[0] in c.captions for c in clips)


def _tiny_config():
    cfg = clap_soundscapes.get_config()
    cfg.data.duration = 1.0
    cfg.model.audio.update(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4, spec_size=64)
    cfg.model.text.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    cfg.model.joint_dim = 16
    cfg.frontend.n_mels = 16
    return cfg


def test_hard_negatives_compete_only_for_the_audio(tmp_path):
    """Loss = (CE over [B texts, B negatives] per audio + CE over B audios per text) / 2."""
    spec = train_clap.build_spec(_tiny_config(), vocab_size=50)
    model = train_clap.ClapModel(spec.model, rngs=nnx.Rngs(0))
    model.eval()
    rng = np.random.default_rng(0)
    B, L = 4, 6
    batch = {"waves": jnp.asarray(0.1 * rng.standard_normal((B, spec.audio.clip_samples)), jnp.float32),
             "ids": jnp.asarray(rng.integers(5, 50, (B, L))), "mask": jnp.ones((B, L), jnp.int32),
             "neg_ids": jnp.asarray(rng.integers(5, 50, (B, L))), "neg_mask": jnp.ones((B, L), jnp.int32)}
    loss = train_clap.contrastive_loss(spec)
    value, metrics = loss(model, batch, None)
    plain, _ = loss(model, {k: v for k, v in batch.items() if not k.startswith("neg_")}, None)

    from clap_jax import pipeline
    mel, _ = pipeline.features({"waves": batch["waves"], "longer": None}, spec.audio,
                               spec.audio.spectrogram.num_frames(spec.audio.clip_samples))
    unit = lambda x: np.asarray(x / jnp.linalg.norm(x, axis=-1, keepdims=True))
    a = unit(model.encode_audio(mel)["embedding"])
    t = unit(model.encode_text(batch["ids"], batch["mask"])["embedding"])
    n = unit(model.encode_text(batch["neg_ids"], batch["neg_mask"])["embedding"])
    scale = float(jnp.exp(model.logit_scale_a[...]))
    ce = lambda logits: float(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(B)).mean())
    expected = 0.5 * (ce(scale * a @ np.concatenate([t, n]).T) + ce(scale * t @ a.T))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    assert float(value) > float(plain)               # extra negatives only add audio->text mass
    wins = (scale * (a * t).sum(1) > scale * (a * n).sum(1)).mean()
    assert float(metrics["negative_accuracy"]) == pytest.approx(wins)


def test_init_from_loads_weights_and_refuses_another_model(tmp_path):
    cfg = _tiny_config()
    spec = train_clap.build_spec(cfg, vocab_size=50)
    model = train_clap.ClapModel(spec.model, rngs=nnx.Rngs(3))
    checkpoint.save_converted(str(tmp_path / "m"), spec, model, None)
    loaded = train_clap.initial_model(spec, str(tmp_path / "m"), seed=0)
    same = jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), nnx.state(model, nnx.Param),
                        nnx.state(loaded, nnx.Param))
    assert all(jax.tree.leaves(same))
    cfg.model.joint_dim = 32
    with pytest.raises(ValueError, match="init_from=.*/m: its spec.json does not match"):
        train_clap.initial_model(train_clap.build_spec(cfg, vocab_size=50), str(tmp_path / "m"), seed=0)
