"""The bundled CNN14 CLAP ``soundscapes-small-cnn14`` written in Microsoft CLAP 2022's checkpoint layout
(``clap_jax.export``): msclap's own code (``msclap.models.clap.CLAP`` and ``CLAPWrapper``'s embedding
methods, its CNN14 layers rebuilt at the model's widths with msclap's ``ConvBlock``) computes the
same embeddings, and ``clap_jax.convert --source=msclap`` reads the file back into the same model."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need the pinned torch==2.13.0 (pip install -e '.[test]')")
pytestmark = pytest.mark.parity

import clap_jax  # noqa: E402
from clap_jax import convert, export  # noqa: E402
from clap_jax.converters.msclap import SPEC_ENTRY  # noqa: E402
from clap_jax.data import soundscapes  # noqa: E402

MODEL = "soundscapes-small-cnn14"
TEXTS = ["this is the sound of rain", "a dog barks twice while a beep sounds", "footsteps, wind"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "msclap"
    return export.export_msclap(MODEL, str(out)), out


def _msclap_model(args: dict, spec):
    """msclap's ``CLAP(**args)`` with a BERT of the model's sizes and msclap's CNN14 layers rebuilt at
    its widths (msclap hard-codes 64 mel bins and channels 64..2048), random weights, eval mode."""
    import reference_models  # noqa: F401  (stand-ins that let msclap import)
    import transformers
    from msclap.models.audio import ConvBlock
    from msclap.models.clap import CLAP
    t, a = spec.model.text, spec.model.audio
    bert = transformers.BertConfig(vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                                   num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                                   max_position_embeddings=t.max_positions, type_vocab_size=t.type_vocab_size)
    saved = transformers.AutoModel.from_pretrained
    transformers.AutoModel.from_pretrained = staticmethod(lambda name, *x, **k: transformers.BertModel(bert))
    try:
        model = CLAP(**args)
    finally:
        transformers.AutoModel.from_pretrained = saved
    base = model.audio_encoder.base
    base.bn0 = torch.nn.BatchNorm2d(a.n_mels)
    for i, (cin, cout) in enumerate(zip((1,) + a.channels[:-1], a.channels)):
        setattr(base, f"conv_block{i + 1}", ConvBlock(in_channels=cin, out_channels=cout))
    base.fc1 = torch.nn.Linear(a.channels[-1], a.embed_dim)
    return model.eval()


def test_msclap_code_computes_the_same_embeddings(exported):
    import reference_models
    path, out = exported
    ours = clap_jax.load(MODEL)
    args = json.loads((out / export.ARGS_FILE).read_text())
    model = _msclap_model(args, ours.spec)
    own_frontend = {k: v.clone() for k, v in model.state_dict().items() if "_extractor." in k}
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"model", SPEC_ENTRY}
    missing, unexpected = model.load_state_dict(saved["model"], strict=False)
    assert not unexpected
    assert missing and all(k.startswith("caption_encoder.base.pooler.") or k.endswith("num_batches_tracked")
                           for k in missing), missing
    for k, v in own_frontend.items():           # the frozen torchlibrosa tensors we wrote are msclap's own
        np.testing.assert_allclose(saved["model"][k].numpy(), v.numpy(), atol=1e-6, rtol=0, err_msg=k)

    tok = reference_models.msclap_tokenizer("2022", str(out / "tokenizer"))
    ref = reference_models.msclap_wrapper(model, tok, "2022")
    ref.args.sampling_rate, ref.args.text_len = args["sample_rate"], ours.spec.tokenizer.max_length
    clips = [c.audio.astype(np.float32) for c in soundscapes.generate(90_500, 3, sample_rate=16000, duration=5.0,
                                                                       stft=None)]
    ref.clips = {f"clip{i}": c for i, c in enumerate(clips)}
    with torch.no_grad():
        ref_a = ref.get_audio_embeddings(list(ref.clips), resample=False).numpy()
        ref_t = ref.get_text_embeddings(TEXTS).numpy()
        ref_logits = ref.compute_similarity(torch.from_numpy(ref_a), torch.from_numpy(ref_t)).numpy()
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    got_a, got_t = ours.embed_audio(clips, 16000), ours.embed_text(TEXTS)
    np.testing.assert_allclose(got_a, unit(ref_a), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_t, unit(ref_t), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours.similarity(got_a, got_t), ref_logits, atol=1e-3, rtol=0)


def test_convert_reads_the_export_back_into_the_same_model(exported, tmp_path):
    path, out = exported
    spec = convert.convert("msclap", str(path), str(tmp_path / "back"), tokenizer=str(out / "tokenizer"))
    original, back = clap_jax.load(MODEL), clap_jax.load(str(tmp_path / "back"))
    assert spec.source == "msclap-2022"
    assert (back.spec.model, back.spec.audio, back.spec.tokenizer) == \
        (original.spec.model, original.spec.audio, original.spec.tokenizer)
    clips = [c.audio for c in soundscapes.generate(90_501, 2, sample_rate=16000, duration=5.0, stft=None)]
    np.testing.assert_allclose(back.embed_audio(clips, 16000), original.embed_audio(clips, 16000), atol=1e-6, rtol=0)
    np.testing.assert_allclose(back.embed_text(TEXTS), original.embed_text(TEXTS), atol=1e-6, rtol=0)


def test_models_of_other_shapes_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="audio encoder cnn14.*only CNN14 \\+ BERT"):
        export.export_msclap("soundscapes-small", str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x")
