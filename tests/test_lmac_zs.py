"""LMAC-ZS: the loss against a direct evaluation of Eq. 6-7, the batched pair computation against
one-pair-at-a-time encodes, prompt conditioning that changes masks, and the Microsoft CLAP 2022
config on a random-weight model (no download)."""
from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

import clap_jax
from clap_jax import checkpoint
from clap_jax.frontend import SpectrogramConfig
from clap_jax.linalg import l2_normalize
from clap_jax.models.clap import ClapConfig, ClapModel
from clap_jax.models.cnn14 import Cnn14Config
from clap_jax.models.text import TextConfig
from clap_jax.spec import AudioConfig, ClapSpec, TokenizerConfig
from lmac import zero_shot
from lmac.zero_shot import ZsLossConfig

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _numpy_loss(out, l1, div, scale=1.0, l1_rejected=0.0):
    """Eq. 6-7 written out with loops over pairs (with ``l1_rejected``, λ1 per pair as documented)."""
    sim, sim_m, mask = out["sim"], out["sim_masked"], out["mask"]
    t, a = out["text"], out["masked_audio"]
    b = sim.shape[0]
    total = 0.0
    for i in range(b):
        for j in range(b):
            clip_mean = sum(sim[k, j] for k in range(b)) / b
            weight = l1 + l1_rejected / (1.0 + np.exp(-(clip_mean - sim[i, j])))
            total += abs(sim[i, j] - sim_m[i, j]) + weight * np.abs(mask[i, j]).mean()
    for i in range(b):
        d_i = sum(abs(t[i] @ t[j] - a[i, i] @ a[j, i]) for j in range(b) if j != i)
        total += div * scale * d_i
    return total


def test_loss_equals_a_direct_evaluation_of_eq_6_and_7():
    rng = np.random.default_rng(0)
    b, d = 3, 5
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    out = {"sim": rng.normal(size=(b, b)), "sim_masked": rng.normal(size=(b, b)),
           "mask": rng.uniform(size=(b, b, 4, 6)), "text": unit(rng.normal(size=(b, d))),
           "masked_audio": unit(rng.normal(size=(b, b, d)))}
    out = {k: v.astype(np.float32) for k, v in out.items()}
    out["scale"] = np.float32(2.5)
    value, parts = zero_shot.loss({k: jnp.asarray(v) for k, v in out.items()}, ZsLossConfig(l1=0.7, diversity=1.3))
    np.testing.assert_allclose(float(value), _numpy_loss(out, 0.7, 1.3, scale=2.5), rtol=1e-5)
    cosine, _ = zero_shot.loss({k: jnp.asarray(v) for k, v in out.items()},
                               ZsLossConfig(l1=0.7, diversity=1.3, diversity_scale="cosine"))
    np.testing.assert_allclose(float(cosine), _numpy_loss(out, 0.7, 1.3), rtol=1e-5)
    np.testing.assert_allclose(float(parts["fidelity"]), np.abs(out["sim"] - out["sim_masked"]).sum(), rtol=1e-5)
    no_div, _ = zero_shot.loss({k: jnp.asarray(v) for k, v in out.items()}, ZsLossConfig(l1=0.7, diversity=0.0))
    np.testing.assert_allclose(float(no_div), _numpy_loss(out, 0.7, 0.0), rtol=1e-5)
    rejected, _ = zero_shot.loss({k: jnp.asarray(v) for k, v in out.items()},
                                 ZsLossConfig(l1=0.7, l1_rejected=5.0, diversity=1.3))
    np.testing.assert_allclose(float(rejected), _numpy_loss(out, 0.7, 1.3, scale=2.5, l1_rejected=5.0), rtol=1e-5)


def test_own_preference_equals_softplus_of_each_twins_logit_gaps():
    """λ3 Σ_pairs softplus(C'_a|b − C'_a|a) + softplus(C'_b|a − C'_b|b), rows 2k and 2k + 1 one clip,
    counted only where ``twins`` says the two prompts name different sounds."""
    rng = np.random.default_rng(1)
    b, d, scale = 4, 5, 3.0
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    out = {"sim": rng.normal(size=(b, b)), "sim_masked": rng.normal(size=(b, b)),
           "mask": rng.uniform(size=(b, b, 2, 3)), "text": unit(rng.normal(size=(b, d))),
           "masked_audio": unit(rng.normal(size=(b, b, d)))}
    out = {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}
    out["scale"] = jnp.float32(scale)
    t, m = np.asarray(out["text"]), np.asarray(out["masked_audio"])           # m[prompt i, clip j]
    softplus = lambda x: np.log1p(np.exp(x))
    logit = lambda prompt, by: scale * t[prompt] @ m[by, prompt]             # clip of row `prompt` kept by `by`'s mask
    gaps = [softplus(logit(a, a + 1) - logit(a, a)) + softplus(logit(a + 1, a) - logit(a + 1, a + 1))
            for a in (0, 2)]
    twins = jnp.array([1.0, 0.0])
    base, _ = zero_shot.loss(out, ZsLossConfig(l1=0.5, diversity=0.2))
    value, parts = zero_shot.loss(out, ZsLossConfig(l1=0.5, diversity=0.2, own_preference=2.0), twins=twins)
    np.testing.assert_allclose(float(parts["own_preference"]), 2.0 * gaps[0], rtol=1e-5)
    np.testing.assert_allclose(float(value), float(base) + 2.0 * gaps[0], rtol=1e-5)
    both, _ = zero_shot.loss(out, ZsLossConfig(own_preference=1.0), twins=jnp.ones(2))
    off, _ = zero_shot.loss(out, ZsLossConfig(), twins=jnp.ones(2))
    np.testing.assert_allclose(float(both) - float(off), sum(gaps), rtol=1e-5)
    with pytest.raises(ValueError, match="own_preference"):
        ZsLossConfig(own_preference=-1.0)


def test_rejected_prompts_pay_more_sparsity_than_the_clips_best_prompt():
    sim = jnp.array([[9.0, -1.0], [0.0, 8.0], [1.0, 1.5]])          # (P, B): prompt 0 fits clip 0, 1 clip 1
    w = np.asarray(zero_shot.l1_weights(sim, ZsLossConfig(l1=2.0, l1_rejected=10.0)))
    assert w.shape == (3, 2) and np.all((w >= 2.0) & (w <= 12.0))
    assert w[0, 0] < 2.1 and w[1, 0] > 9.0 and w[1, 1] < 2.1 and w[0, 1] > 9.0
    np.testing.assert_allclose(zero_shot.l1_weights(sim, ZsLossConfig(l1=2.0)), 2.0)
    with pytest.raises(ValueError, match="l1_rejected"):
        ZsLossConfig(l1_rejected=-1.0)


@pytest.fixture(scope="module")
def small_clap():
    return clap_jax.load("soundscapes-small")


def _decoder(clap, kind="cross_attention", domain="stft", seed=0, similarity_map=True):
    import ml_collections
    from train import lmac_zs
    cfg = ml_collections.ConfigDict(dict(loss=dict(domain=domain), decoder=dict(dim=16, conditioning=dict(
        kind=kind, levels=None, heads=4, text_tokens=4, similarity_map=similarity_map))))
    zc = lmac_zs.decoder_config(cfg, clap)
    from lmac import text_decoders
    return zc, text_decoders.init(zc, seed=seed)


@pytest.mark.parametrize("domain", ["stft", "mel"])
def test_batched_pairs_equal_one_pair_at_a_time(small_clap, domain):
    """C and C' for P prompts x B clips from one batched call equal the model's own zero-shot
    logits (Clap.similarity) and single-pair encodes of each masked clip."""
    clap = small_clap
    zc, dec = _decoder(clap, domain=domain)
    rng = np.random.default_rng(1)
    waves = (0.2 * rng.standard_normal((2, clap.spec.audio.clip_samples))).astype(np.float32)
    prompts = ["a high beep", "rain falling", "a dog barking"]
    text = clap.embed_text(prompts)
    model = nnx.merge(clap.graphdef, clap.state)
    sg = clap.spec.audio.spectrogram
    cfg = ZsLossConfig(domain=domain)
    mag = clap.magnitude(jnp.asarray(waves))
    out = zero_shot.forward(model, dec, mag, jnp.asarray(text), sg, cfg, True, jnp.asarray(clap.logit_scale))
    assert out["mask"].shape == (3, 2) + zero_shot.mask_grid(domain, sg, mag.shape[1])
    np.testing.assert_allclose(np.asarray(out["sim"]).T, clap.similarity(clap.embed_audio(waves, sg.sample_rate), text),
                               rtol=1e-4, atol=1e-4)
    single = jax.jit(lambda m, mk: clap.apply_audio(clap.state, zero_shot.encoder_input(m, mk, sg, cfg))["embedding"])
    for i in range(3):
        for j in range(2):
            emb = single(mag[j:j + 1], out["mask"][i, j][None])
            expect = clap.logit_scale * float(l2_normalize(jnp.asarray(text[i])) @ l2_normalize(emb[0]))
            np.testing.assert_allclose(float(out["sim_masked"][i, j]), expect, rtol=1e-4, atol=1e-4)


def _train(tmp_path, *overrides, steps=4):
    """train.lmac_zs.run on the bundled CLAP with a tiny decoder; returns the exported explainer."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, "configs", "lmac_zs_soundscapes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.get_config()
    cfg.steps, cfg.batch_size, cfg.log_every, cfg.eval_every, cfg.checkpoint_every = steps, 2, 2, steps, steps
    cfg.data.eval_clips, cfg.data.workers, cfg.decoder.dim, cfg.decoder.conditioning.text_tokens = 2, 1, 16, 4
    cfg.optim.learning_rate = 3e-3
    for key, value in overrides:
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    from train import lmac_zs
    return lmac_zs.run(cfg, str(tmp_path / "run"), str(tmp_path / "export"))


def test_film_conditioning_separates_two_prompts_after_a_few_steps(tmp_path, small_clap):
    """FiLM starts as the identity (without the dense-similarity input both prompts get the same
    mask); after a few steps of the loss the masks differ, and the export loads through lmac.load."""
    import lmac
    from lmac import zs_explainer
    wave, rate = clap_jax.audio.read_audio(os.path.join(lmac.explainer.BUNDLED_DIR, "examples", "beep_and_rain.wav"))
    prompts = ["this is the sound of high beep", "this is the sound of rain"]
    trained = _train(tmp_path, ("decoder.conditioning.kind", "film"), ("decoder.conditioning.similarity_map", False))
    zc, initial = _decoder(small_clap, kind="film", seed=1234, similarity_map=False)
    fresh = zs_explainer.ZsExplainer(trained.spec, small_clap, initial)
    [before] = fresh.explain([wave], rate, prompts=prompts)
    np.testing.assert_array_equal(before.masks[0], before.masks[1])
    loaded = lmac.load(str(tmp_path / "export"))
    assert isinstance(loaded, zs_explainer.ZsExplainer) and loaded.spec == trained.spec
    [after] = loaded.explain([wave], rate, prompts=prompts)
    assert np.abs(after.masks[0] - after.masks[1]).mean() > 1e-4
    assert after.masks.shape == (2, 501, 257) and np.all((after.masks >= 0) & (after.masks <= 1))
    assert after.masked_in.shape == (2, small_clap.spec.audio.clip_samples)
    np.testing.assert_allclose(after.probabilities.sum(), 1.0, rtol=1e-5)
    view = after["this is the sound of rain"]
    assert view.mask.shape == (501, 257) and np.isfinite(view.similarity_in)


def test_training_validation_reports_the_prompt_probe_of_the_exported_decoder(tmp_path, small_clap):
    """The eval rows of a soundscapes run carry the prompt probe (present / absent mask means, their
    ratio, Spearman's ρ with the similarity, recomputed here through ``explain`` of the exported
    decoder on the same validation clips and prompts; the own-mask wins, a share of the clips'
    ordered co-present pairs)."""
    import json

    import lmac
    from scipy import stats

    from clap_jax.data import soundscapes
    _train(tmp_path, ("data.eval_clips", 4), steps=2)
    row = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl") if '"eval"' in line][-1]
    cfg = soundscapes.SoundscapeConfig(sample_rate=16000, duration=5.0, stft=None, min_events=1, max_events=3)
    clips = [soundscapes.generate_clip(25_000, i, cfg) for i in range(4)]          # clips 2, 3: 2 and 3 classes
    ids = [c.id for c in soundscapes.CLASSES]
    rng, mm, sim, present = np.random.default_rng(0), [], [], []
    loaded = lmac.load(str(tmp_path / "export"))
    for clip in clips:
        here = sorted({ids.index(label) for label in clip.labels})
        gone = rng.choice(sorted(set(range(len(ids))) - set(here)), len(here), replace=False)
        prompts = [f"this is the sound of {soundscapes.CLASSES[k].label}" for k in [*here, *gone]]
        [e] = loaded.explain([clip.audio], clip.sample_rate, prompts=prompts)
        mm += list(e.mask_mean)
        sim += list(e.similarity)
        present += [True] * len(here) + [False] * len(gone)
    mm, present = np.array(mm), np.array(present)
    np.testing.assert_allclose(row["mm_present"], mm[present].mean(), rtol=1e-4)
    np.testing.assert_allclose(row["mm_absent"], mm[~present].mean(), rtol=1e-4)
    np.testing.assert_allclose(row["absent_present"], mm[~present].mean() / mm[present].mean(), rtol=1e-4)
    np.testing.assert_allclose(row["rho_mm_sim"], stats.spearmanr(mm, sim).statistic, atol=1e-6)
    n_pairs = sum(len(set(c.labels)) * (len(set(c.labels)) - 1) for c in clips)     # ordered co-present pairs
    wins = row["own_mask_wins"] * n_pairs                                            # a count of the 8 pairs
    assert n_pairs == 8 and 0 <= row["own_mask_wins"] <= 1 and abs(wins - round(wins)) < 1e-6


def test_mel_domain_decoder_is_localised_on_the_stft_grid_of_the_truth(tmp_path):
    """A mel-domain decoder is evaluated with its mel masks spread back to the STFT grid of the
    ground truth: the ROC-AUC of ``evaluate`` equals the one computed from ``explain``'s STFT-grid
    masks for each present event's prompt."""
    from lmac import evaluate_zs, metrics
    from clap_jax.data import soundscapes
    explainer = _train(tmp_path, ("loss.domain", "mel"), steps=1)
    assert explainer.spec.decoder.n_freq == explainer.clap.spec.audio.spectrogram.n_mels
    waves, truth, _ = evaluate_zs.eval_clips(explainer, 2, 70_000)
    result = evaluate_zs.evaluate(explainer, waves, truth, "this is the sound of {label}", methods=("lmac_zs",),
                                  batch_size=2, progress=False)["lmac_zs"]
    aucs = []
    for w, events in zip(waves, truth):
        prompts = [f"this is the sound of {soundscapes.CLASSES[k].label}" for k, _ in events]
        [e] = explainer.explain([w], explainer.sample_rate, prompts=prompts)
        for (k, _), mask in zip(events, e.masks):
            true = next(m for kk, m in events if kk == k)         # a class's first event, as evaluate does
            frames = min(len(true), len(mask))
            auc = metrics.localization_per_sample(jnp.asarray(mask[None, :frames]), jnp.asarray(true[None, :frames]))
            aucs.append(float(auc["roc_auc"][0]))
    np.testing.assert_allclose(result["roc_auc"], np.mean(aucs), rtol=1e-4)


MSCLAP_2022_SMALL = ClapSpec(
    model=ClapConfig(audio=Cnn14Config(channels=(4, 4, 4, 8, 16, 32), embed_dim=32, num_classes=0),
                     text=TextConfig(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                     max_positions=40, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
                                     positions="absolute", pooling="cls"),
                     joint_dim=24, projection="msclap", shared_logit_scale=True),
    audio=AudioConfig(spectrogram=SpectrogramConfig(sample_rate=44100, n_fft=1024, win_length=1024, hop_length=320,
                                                    n_mels=64, fmin=50.0, fmax=14000.0),
                      clip_samples=5 * 44100, pad="repeat", quantize_int16=False),
    tokenizer=TokenizerConfig(max_length=32, family="bert"), source="msclap-2022", normalize_embeddings=False)


def test_msclap2022_config_trains_a_step_on_a_random_weight_model(tmp_path, bert_tokenizer_dir):
    """The paper's setting (CNN14 + BERT, the CNN14 decoder with cross-attention, Clotho-style
    captions) builds from configs/lmac_zs_msclap2022.py and trains on a random-weight model (two
    steps: the loop's one-step warm-up starts at learning rate 0)."""
    import importlib.util
    model = ClapModel(MSCLAP_2022_SMALL.model, rngs=nnx.Rngs(0))
    checkpoint.save_converted(str(tmp_path / "msclap"), MSCLAP_2022_SMALL, model, bert_tokenizer_dir)
    audio_dir = tmp_path / "clotho"
    audio_dir.mkdir()
    rows = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    rng = np.random.default_rng(0)
    for k in range(3):
        sf.write(audio_dir / f"clip{k}.wav", (0.1 * rng.standard_normal(44100 * 2)).astype(np.float32), 44100)
        rows.append(f"clip{k}.wav,a dog barks,rain falls,a bell rings,birds chirp,an engine hums")
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, "configs", "lmac_zs_msclap2022.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.get_config()
    cfg.model, cfg.steps, cfg.log_every, cfg.eval_every, cfg.checkpoint_every = str(tmp_path / "msclap"), 2, 1, 2, 2
    cfg.data.csv, cfg.data.root, cfg.data.workers, cfg.data.text_length = str(tmp_path / "captions.csv"), str(audio_dir), 1, 32
    from train import lmac_zs
    clap = clap_jax.load(cfg.model)
    initial = jax.tree.leaves(nnx.state(__import__("lmac").text_decoders.init(lmac_zs.decoder_config(cfg, clap),
                                                                               seed=cfg.seed), nnx.Param))
    explainer = lmac_zs.run(cfg, str(tmp_path / "run"), str(tmp_path / "export"))
    zc = explainer.spec.decoder
    assert zc.decoder.kind == "cnn14_psi" and zc.decoder.dim == 32 and (zc.frames, zc.n_freq) == (690, 513)
    after = jax.tree.leaves(nnx.state(explainer.decoder(), nnx.Param))
    assert any(not np.array_equal(a, b) for a, b in zip(initial, after))
    import json
    row = json.loads(open(tmp_path / "run" / "metrics.jsonl").readline())
    assert np.isfinite(row["loss"]) and row["fidelity"] >= 0
    [e] = explainer.explain([rng.standard_normal(44100).astype(np.float32) * 0.1], 44100, prompts=["a dog", "rain"])
    assert e.masks.shape == (2, 690, 513)


def test_zero_shot_evaluation_writes_finite_numbers_for_every_method(tmp_path):
    """``lmac.evaluate --zero_shot`` on a handful of held-out clips: every method and protocol has
    finite faithfulness, localisation and present/absent numbers, written to results.json/.md; the
    ``truth`` oracle localises perfectly, keeps absent prompts dark and gives co-present events masks
    of their own."""
    import json
    import subprocess
    import sys
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "lmac.evaluate", "--zero_shot", "--clips=3", "--batch_size=4",
                           "--protocols=in_domain,mixtures_3db",
                           "--methods=lmac_zs,gradcam++,smoothgrad,optimized,truth", "--optimized_steps=3",
                           f"--out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["seed"] == 70000 and data["clips"] == 3
    assert set(data["results"]) == {"in_domain", "mixtures_3db"}
    for protocol in data["results"].values():
        assert set(protocol) == {"lmac_zs", "gradcam++", "smoothgrad", "optimized", "truth"}
        oracle = protocol.pop("truth")
        for key in ("relevance_mass", "relevance_rank", "roc_auc", "iou"):
            np.testing.assert_allclose(oracle[key], 1.0, atol=1e-6)
        assert oracle["mask_mean_absent"] == 0.0 and oracle["absent_over_present"] == 0.0
        assert oracle["prompt_specificity"] > 0.5 and oracle["copresent_mask_corr"] < 0.5
        for scores in protocol.values():
            for key in ("AI", "AD", "FF", "Fid-In", "MM", "roc_auc", "relevance_mass", "mask_mean_present",
                        "mask_mean_absent", "spearman_mask_mean_similarity", "prompt_specificity",
                        "copresent_mask_corr"):
                assert np.isfinite(scores[key]), (key, scores)
            assert 0 <= scores["mask_mean_absent"] <= 1 and 0 <= scores["roc_auc"] <= 1
    for protocol in ("in_domain", "mixtures_3db"):           # CLAP's own separation, no explainer involved
        sep = data["prompt_separation"][protocol]
        assert 0 <= sep["auc"] <= 1 and 0 <= sep["step_lit_at_ratio_0.2"] <= 1 and sep["step_ratio_lit_80"] >= 0
    md = (out / "results.md").read_text()
    assert "| lmac_zs |" in md and "| mixtures_3db |" in md


def test_cnn14_decoder_below_64_mels_repeats_bands_to_keep_a_frequency_axis(caplog):
    """L-MAC's CNN14 stack from a 32-mel CNN14's blocks gives one frequency bin (a time-only mask);
    ``freq_repeat`` (picked by ``train.lmac_zs.decoder_config``: 2 for 32 mels, 1 for Microsoft
    CLAP 2022's 64) restores the 64-mel geometry; asking for fewer than 64 bands is logged."""
    import ml_collections

    from clap_jax.models.cnn14 import Cnn14
    from lmac import masking, text_decoders
    from train import lmac_zs
    assert [lmac_zs.cnn14_freq_repeat(0, n) for n in (16, 32, 40, 64, 80)] == [4, 2, 2, 1, 1]
    with caplog.at_level(logging.WARNING):
        assert lmac_zs.cnn14_freq_repeat(1, 32) == 1      # the bundled decoder's geometry: allowed, and said
    assert "freq_repeat=1: 32 mel bands reach" in caplog.text and "time-only" in caplog.text
    with pytest.raises(ValueError, match=r"config.decoder.freq_repeat=-1: must be 0"):
        lmac_zs.cnn14_freq_repeat(-1, 32)
    spec = ClapSpec(model=ClapConfig(audio=Cnn14Config(channels=(4, 4, 4, 8, 16, 32), n_mels=32), joint_dim=24),
                    audio=AudioConfig(spectrogram=SpectrogramConfig(sample_rate=16000, n_fft=512, win_length=512,
                                                                    hop_length=160, n_mels=32),
                                      clip_samples=16000))
    cfg = ml_collections.ConfigDict(dict(loss=dict(domain="stft"), decoder=dict(
        freq_repeat=0, conditioning=dict(kind="film", similarity_map=False))))
    zc = lmac_zs.decoder_config(cfg, type("Clap", (), {"spec": spec})())
    assert zc.freq_repeat == 2 and (zc.frames, zc.n_freq) == (101, 257)
    feats = Cnn14(spec.model.audio, rngs=nnx.Rngs(0))(jax.random.normal(jax.random.key(0), (2, 101, 32)))
    t = jax.random.normal(jax.random.key(1), (2, 24))
    dec = text_decoders.init(zc)
    for repeat, bins in ((1, 1), (2, 385)):        # the stack's own output, before the stretch to the grid
        blocks = [jnp.repeat(h, repeat, axis=2) for h in masking.decoder_inputs(feats["blocks"])]
        assert jax.eval_shape(dec.base, blocks).shape == (2, 97, bins)
    y = np.asarray(dec(feats, t))
    assert y.shape == (2, 101, 257) and y.std(axis=2).min() > 1e-4      # every frame varies along frequency


def test_baseline_maps_become_masks_by_their_positive_part_or_signed_min_max():
    """The default keeps only the bins that raised the logit, each over the row's largest attribution
    (what ``lmac.evaluate`` does to L-MAC's baselines); ``ig_signed`` puts a signed map's zero at mid
    grey."""
    from lmac.baselines import map_to_mask
    m = jnp.asarray([[[-2.0, 0.0], [1.0, 2.0]], [[0.0, 0.5], [1.0, -1.0]]])
    np.testing.assert_allclose(map_to_mask(m), [[[0, 0], [0.5, 1]], [[0, 0.5], [1, 0]]])
    np.testing.assert_allclose(map_to_mask(m, signed=True), [[[0, 0.5], [0.75, 1]], [[0.5, 0.75], [1, 0]]])
    flat = map_to_mask(-jnp.ones((1, 2, 2)))      # nothing raised the logit: an empty mask
    np.testing.assert_array_equal(flat, np.zeros((1, 2, 2)))
    cam = jnp.asarray([[[0.5, 1.0], [2.0, 3.0]]])     # a map >= 0 (CAMs, Saliency): min-max, as before
    np.testing.assert_allclose(map_to_mask(cam), [[[0, 0.2], [0.6, 1]]])


def test_prompt_separation_equals_sklearns_auc_and_a_hand_counted_step():
    """CLAP's own present / absent separation: the ROC-AUC equals scikit-learn's (ties included), and
    the step ratios are counted by hand on a small case."""
    from sklearn.metrics import roc_auc_score

    from lmac.separation import prompt_separation
    rng = np.random.default_rng(0)
    sim = np.round(rng.normal(size=300) * 3, 0)         # rounded: many ties
    present = rng.random(300) < 0.6
    sim[present] += 1.0
    got = prompt_separation(sim, present)
    np.testing.assert_allclose(got["auc"], roc_auc_score(present, sim), atol=1e-12)
    # 5 present at 1..5, 5 absent at 0, 0, 0, 2, 4. Lighting 80 % of the present (>= 2) lights 2 absent:
    # 0.4 / 0.8 = 0.5. Steps at absent / present <= 0.2: t = 5 lights 1 present, none absent (ratio 0),
    # t in (2, 4] lights 2 or 3 present and 1 absent (0.5, 0.33), so at most 0.2 of the present prompts.
    sim = np.array([1, 2, 3, 4, 5, 0, 0, 0, 2, 4], float)
    present = np.arange(10) < 5
    got = prompt_separation(sim, present)
    assert got["step_ratio_lit_80"] == pytest.approx(0.5)
    assert got["step_lit_at_ratio_0.2"] == pytest.approx(0.2)
    assert got["auc"] == pytest.approx(roc_auc_score(present, sim))
    assert prompt_separation(np.array([1.0, 2.0, 0.0]), np.array([True, True, False]))["step_lit_at_ratio_0.2"] == 1.0


def test_twin_prompts_give_each_clip_two_rows_for_two_of_its_own_sounds(small_clap):
    """``data.twin_prompts``: decode adds a second text, the prompt of another event class of the
    same clip; ``twin_rows`` puts each clip on rows 2k and 2k + 1 with its two texts."""
    import importlib.util

    from clap_jax.data import soundscapes
    from train import lmac_zs
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, "configs", "lmac_zs_soundscapes_twins.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    d = module.get_config().data
    decode = lmac_zs.make_decode(small_clap, d)
    tok = small_clap.tokenizer

    def texts_of(ids, mask, candidates):
        hits = [t for t in candidates if np.array_equal(tok([t])[0][0, :int(mask.sum())], ids[:int(mask.sum())])]
        assert len(hits) == 1
        return hits[0]

    cfg = soundscapes.SoundscapeConfig(sample_rate=16000, duration=5.0, stft=None, min_events=2, max_events=3)
    clips = [c for c in (soundscapes.generate_clip(1, i, cfg) for i in range(12)) if len(set(c.labels)) > 1][:4]
    assert len(clips) >= 2
    for k, clip in enumerate(clips):
        prompts = [d.prompt.format(label=soundscapes.get_class(c).label) for c in sorted(set(clip.labels))]
        out = decode(clip, np.random.default_rng(k))
        first = texts_of(out["ids"], out["mask"], prompts + clip.captions)
        twin = texts_of(out["ids_twin"], out["mask_twin"], prompts)
        assert twin != first
        assert out["twin_distinct"] == float(first in prompts)   # two class prompts: compared
    batch = {key: jnp.stack([decode(c, np.random.default_rng(k))[key] for k, c in enumerate(clips[:2])])
             for key in ("waves", "ids", "mask", "ids_twin", "mask_twin", "twin_distinct")}
    rows = lmac_zs.twin_rows(batch)
    assert rows["waves"].shape[0] == rows["ids"].shape[0] == 4
    for k in range(2):
        np.testing.assert_array_equal(rows["waves"][2 * k], batch["waves"][k])
        np.testing.assert_array_equal(rows["waves"][2 * k + 1], batch["waves"][k])
        np.testing.assert_array_equal(rows["ids"][2 * k], batch["ids"][k])
        np.testing.assert_array_equal(rows["ids"][2 * k + 1], batch["ids_twin"][k])
        np.testing.assert_array_equal(rows["mask"][2 * k + 1], batch["mask_twin"][k])
    np.testing.assert_array_equal(rows["twins"], batch["twin_distinct"])
    untouched = {key: batch[key] for key in ("waves", "ids", "mask")}
    assert lmac_zs.twin_rows(untouched) is untouched
    with pytest.raises(ValueError, match="twin_prompts"):
        decode(os.path.join(ROOT, "clap_jax", "bundled", "examples", "beep_and_rain.wav"), np.random.default_rng(0))
