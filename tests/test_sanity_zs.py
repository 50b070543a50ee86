"""LMAC-ZS sanity outputs on a random-weight decoder over the bundled CLAP: cascading randomisation of
the audio encoder (SSIM 1 before any block is re-initialised, one point per block, maps that change
once the encoder is random) and the figures the zero-shot evaluation writes (scatter.png,
sanity.png)."""
from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

import clap_jax
from lmac import evaluate_zs, sanity_zs, text_decoders, zs_explainer
from lmac.zero_shot import ZsLossConfig


def _explainer():
    from train import lmac_zs
    clap = clap_jax.load("soundscapes-small")
    cfg = ml_collections.ConfigDict(dict(loss=dict(domain="stft"), decoder=dict(dim=16, conditioning=dict(
        kind="cross_attention", levels=None, heads=4, text_tokens=4, similarity_map=True))))
    zc = lmac_zs.decoder_config(cfg, clap)
    spec = zs_explainer.ZsExplainerSpec(decoder=zc, loss=ZsLossConfig(), model="soundscapes-small",
                                        model_spec=zs_explainer.model_spec_dict(clap.spec))
    return zs_explainer.ZsExplainer(spec, clap, text_decoders.init(zc, seed=0))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One ``evaluate_zs.run`` on 2 clips (in-domain, LMAC-ZS and GradCAM++, both clips in the sanity check)."""
    out = tmp_path_factory.mktemp("zs-sanity")
    explainer = _explainer()
    evaluate_zs.run(explainer, name="tiny", clips=2, seed=70000, template="this is the sound of {label}",
                    out=str(out), protocol_names=("in_domain",), methods=("lmac_zs", "gradcam++"), batch_size=2,
                    sanity_clips=2)
    return out, explainer


def test_cascade_starts_at_one_has_a_point_per_block_and_changes_the_maps(evaluated):
    out, explainer = evaluated
    result = json.loads((out / "sanity.json").read_text())
    steps = sanity_zs.cascade(nnx.merge(explainer.clap.graphdef, explainer.clap.state))
    assert result["steps"] == ["original"] + [name for name, _ in steps]
    assert result["steps"][:3] == ["original", "projection", "stage4"] and result["steps"][-1] == "patch_embed"
    assert result["n_clips"] == 2 and len(result["prompts"]) == 2
    assert set(result["methods"]) == {"lmac_zs", "gradcam++"}
    for name, r in result["methods"].items():
        assert len(r["ssim_mean"]) == len(r["ssim_std"]) == len(result["steps"])
        assert np.asarray(r["ssim"]).shape == (len(result["steps"]), 2)
        np.testing.assert_allclose(r["ssim"][0], 1.0, atol=1e-5)
        assert r["ssim_mean"][-1] < 0.99, (name, r["ssim_mean"])
        assert all(-1.0 <= v <= 1.0 + 1e-5 for v in r["ssim_mean"])
        assert -1.0 <= r["unrelated_mean"] <= 1.0 + 1e-5, name          # clip 0's map against clip 1's
    assert "cascading randomisation" in (out / "results.md").read_text()
    assert "unrelated maps" in (out / "results.md").read_text()


@pytest.mark.parametrize("name", ["scatter.png", "sanity.png", "maps.png", "separation.png"])
def test_figures_are_real_images(evaluated, name):
    import matplotlib.image
    img = matplotlib.image.imread(str(evaluated[0] / name))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01          # not blank


def test_prompt_examples_hold_each_present_event_with_its_true_mask_then_one_absent_prompt(evaluated):
    _, explainer = evaluated
    waves, truth, _ = evaluate_zs.eval_clips(explainer, 2, 70000)
    examples = {}
    evaluate_zs.evaluate(explainer, waves, truth, "this is the sound of {label}", methods=("lmac_zs",),
                         batch_size=2, progress=False, examples=examples, n_examples=2)
    labels = [c.label for c in evaluate_zs.soundscapes.CLASSES]
    expected = []
    for i, events in enumerate(truth):
        expected += [(i, labels[k], "present") for k, _ in events[:3]]
        expected.append((i, None, "absent"))
    assert [(c, k) for c, k in zip(examples["clip"], examples["kind"])] == [(c, k) for c, _, k in expected]
    n = len(expected)
    assert examples["spectrogram"].shape[0] == examples["truth"].shape[0] == examples["maps"]["lmac_zs"].shape[0] == n
    assert len(examples["similarity"]) == n
    for r, (c, label, kind) in enumerate(expected):
        if kind == "present":
            assert examples["prompt"][r] == label
            assert examples["truth"][r].any()
        else:
            assert examples["prompt"][r] not in {labels[k] for k, _ in truth[c]}
            assert not examples["truth"][r].any()
    m = examples["maps"]["lmac_zs"]
    assert m.shape[1:] == examples["spectrogram"].shape[1:] and 0.0 <= m.min() and m.max() <= 1.0


def test_reinitialize_replaces_only_the_given_paths_and_leaves_the_input_alone():
    clap = clap_jax.load("soundscapes-small")
    fresh = sanity_zs.fresh_state(clap.graphdef, clap.state, seed=3)
    before = nnx.to_pure_dict(clap.state)
    copy = jax.tree.map(np.array, before)
    new = nnx.to_pure_dict(sanity_zs.reinitialize(clap.state, fresh, [("audio_branch", "layers", 3),
                                                                       ("audio_branch", "no_such_module")]))
    jax.tree.map(np.testing.assert_array_equal, nnx.to_pure_dict(clap.state), copy)
    jax.tree.map(np.testing.assert_array_equal, new["audio_branch"]["layers"][3], fresh["audio_branch"]["layers"][3])
    jax.tree.map(np.testing.assert_array_equal, new["audio_branch"]["layers"][2], before["audio_branch"]["layers"][2])
    jax.tree.map(np.testing.assert_array_equal, new["audio_projection"], before["audio_projection"])
