r"""Audio clips/s and text captions/s: clap_jax against the PyTorch reference with the same weights.

    python benchmarks/embed_throughput.py --model=laion-tiny --batch_size=8 --clip_seconds=10 \
        --num_batches=5 --dtype=float32
    python benchmarks/embed_throughput.py --model=msclap-2023 --batch_size=4 --clip_seconds=7

The reference (``laion_clap`` for laion-*, ``transformers.ClapModel`` for hf-*, msclap's
``CLAPWrapper`` methods for msclap-*, SpeechBrain's front end + ``Cnn14`` + ``Linear`` for
cnn14-sb) is built offline with random weights, and its state dict is converted into ours in
memory, so both sides run the same network. Each side is timed end to end from raw waveforms /
strings (front end, padding and tokenisation included), warm-up (JIT compilation) excluded; the
median batch time is reported. Clips are generated at the model's own rate (48 kHz LAION/HF,
44.1 kHz msclap, 16 kHz cnn14-sb). cnn14-sb is a classifier: it has no text columns. Prints one
markdown table row per run.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))
from references import CAPTIONS, numpy_state, ours_from_laion, tokenizer_dir  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "laion-tiny", ["laion-tiny", "laion-base", "laion-fusion", "hf-tiny", "msclap-2022",
                                          "msclap-2023", "cnn14-sb"], "Model family/size.")
flags.DEFINE_integer("batch_size", 8, "Clips (and captions) per batch.")
flags.DEFINE_float("clip_seconds", 10.0, "Clip length in seconds (at the model's sample rate).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype of our encoders.")
flags.DEFINE_integer("num_batches", 5, "Timed batches per side (after one warm-up batch).")
flags.DEFINE_integer("text_layers", 12, "Text encoder layers (12 = roberta-base, bert-base-uncased, gpt2).")
flags.DEFINE_bool("header", False, "Print the table header first.")

def _median_rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_items / statistics.median(times)


RATES = {"msclap-2022": 44100, "msclap-2023": 44100, "cnn14-sb": 16000}


def _msclap(version: str, waves, texts, dtype):
    """msclap's CLAPWrapper methods on a random-weight CLAP, and ours converted from its state dict."""
    import reference_models
    from clap_jax import api, checkpoint, convert, weights
    tok_dir = tokenizer_dir("bert" if version == "2022" else "gpt2")
    model = reference_models.msclap_model(version, text_layers=FLAGS.text_layers)
    ref = reference_models.msclap_wrapper(model, reference_models.msclap_tokenizer(version, tok_dir), version)
    ref.clips = {f"clip{i}": w for i, w in enumerate(waves)}
    state = numpy_state(model.state_dict())
    spec = convert.msclap_spec(state)
    ours_model = checkpoint.abstract_model(spec, dtype)
    weights.load_state(ours_model, state, convert.MSCLAP_2022_RULES if version == "2022" else convert.MSCLAP_2023_RULES,
                       convert.MSCLAP_IGNORE)
    ours = api.from_model(spec, ours_model, tok_dir)
    return (ours, lambda: ref.get_audio_embeddings(list(ref.clips), resample=False),
            lambda: ref.get_text_embeddings(texts))


def _cnn14_sb(waves, dtype):
    """The L-MAC recipe's classifier: SpeechBrain front end + Cnn14 + Linear, and ours converted."""
    import reference_models
    from clap_jax import checkpoint, classifier, convert, weights
    from speechbrain.processing.features import STFT, Filterbank, spectral_magnitude
    emb, clf = reference_models.speechbrain_cnn14()
    state = numpy_state(emb.state_dict())
    state.update({f"classifier.{k}": v for k, v in numpy_state(clf.state_dict()).items()})
    spec = convert.speechbrain_spec(state)
    model = checkpoint.abstract_classifier(spec, dtype)
    weights.load_state(model, state, convert.SPEECHBRAIN_RULES, convert.SPEECHBRAIN_IGNORE)
    ours = classifier.Classifier(spec, model)
    stft = STFT(sample_rate=16000, n_fft=1024, win_length=23.2199, hop_length=11.6099)
    fbank = Filterbank(n_mels=80, n_fft=1024, sample_rate=16000, log_mel=False)

    def ref_audio():
        import torch
        x = torch.from_numpy(waves)
        x = x / x.max(dim=1, keepdim=True).values
        feats = torch.log1p(fbank(spectral_magnitude(stft(x), power=0.5)))
        return clf(emb(feats)[0]).squeeze(1)
    return ours, ref_audio


def main(argv):
    del argv
    from clap_jax import runtime
    runtime.quiet_logs()  # the table alone on the output (dependencies log WARNING and above)
    import torch
    import reference_models
    from clap_jax import convert
    torch.set_num_threads(os.cpu_count())
    dtype = jnp.bfloat16 if FLAGS.dtype == "bfloat16" else jnp.float32
    rate = RATES.get(FLAGS.model, 48000)
    n, b = int(FLAGS.clip_seconds * rate), FLAGS.batch_size
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((b, n))).astype(np.float32)
    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(b)]
    ours_text = ref_text = None

    if FLAGS.model.startswith("laion"):
        tok_dir = tokenizer_dir()
        amodel = "HTSAT-base" if FLAGS.model == "laion-base" else "HTSAT-tiny"
        ref = reference_models.laion_module(amodel, fusion=FLAGS.model == "laion-fusion",
                                            text_layers=FLAGS.text_layers)
        ours = ours_from_laion(ref.model.state_dict(), tok_dir, dtype)
        ref_tok = reference_models.roberta_tokenizer(tok_dir)
        if FLAGS.model == "laion-fusion":
            # LAION's fusion front end needs torchaudio, which does not load beside the CPU torch
            # wheel; its model is timed on HF-extracted mels (the front end excluded, noted in the row).
            import transformers
            fe = transformers.ClapFeatureExtractor(frequency_min=50)
            feats = fe(list(waves), sampling_rate=48000, return_tensors="pt")
            data = [{"mel_fusion": f, "longer": l} for f, l in zip(feats["input_features"], feats["is_longer"])]
            ref_audio = lambda: ref.model.get_audio_embedding(data)
        else:
            ref_audio = lambda: ref.get_audio_embedding_from_data(waves)
        ref_text = lambda: ref.get_text_embedding(texts, tokenizer=ref_tok)
    elif FLAGS.model.startswith("msclap"):
        ours, ref_audio, ref_text = _msclap(FLAGS.model.split("-")[1], waves, texts, dtype)
    elif FLAGS.model == "cnn14-sb":
        ours, ref_audio = _cnn14_sb(waves, dtype)
    else:
        import transformers
        tok_dir = tokenizer_dir()
        torch.manual_seed(0)
        ref = transformers.ClapModel(transformers.ClapConfig(
            text_config={"num_hidden_layers": FLAGS.text_layers})).eval()
        fe = transformers.ClapFeatureExtractor(frequency_min=50, truncation="rand_trunc")
        tok = reference_models._roberta_tokenizer_from_dir(tok_dir)
        import tempfile
        d = tempfile.mkdtemp(prefix="bench_hf")
        ref.save_pretrained(d)
        fe.save_pretrained(d)
        tok.save_pretrained(d)
        convert.convert("hf", d, os.path.join(d, "converted"))
        from clap_jax import load
        ours = load(os.path.join(d, "converted"), dtype=dtype)
        ref_audio = lambda: ref.get_audio_features(**fe(list(waves), sampling_rate=48000, return_tensors="pt"))
        ref_text = lambda: ref.get_text_features(**tok(texts, padding=True, return_tensors="pt"))

    if FLAGS.model == "cnn14-sb":
        our_audio = lambda: ours.logits(waves, rate)
    else:
        our_audio = lambda: ours.embed_audio(waves, rate)
        ours_text = lambda: ours.embed_text(texts)
    with torch.no_grad():
        ref_a = _median_rate(ref_audio, b, FLAGS.num_batches)
        ref_t = _median_rate(ref_text, b, FLAGS.num_batches) if ref_text else None
    our_a = _median_rate(our_audio, b, FLAGS.num_batches)
    our_t = _median_rate(ours_text, b, FLAGS.num_batches) if ours_text else None

    device = jax.devices()[0]
    where = f"{device.platform}:{getattr(device, 'device_kind', '')}"
    if FLAGS.header:
        print("| model | device | dtype | batch | clip s | audio clips/s (ours) | audio clips/s (ref) | speed-up "
              "| captions/s (ours) | captions/s (ref) | speed-up |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    note = {"laion-fusion": " (ref: model only)", "cnn14-sb": " (classifier logits)"}.get(FLAGS.model, "")
    text = (f"{our_t:.1f} | {ref_t:.1f} | {our_t / ref_t:.2f}x" if our_t else "– | – | –")
    print(f"| {FLAGS.model}{note} | {where} | {FLAGS.dtype} | {b} | {FLAGS.clip_seconds:g} | {our_a:.2f} | {ref_a:.2f} "
          f"| {our_a / ref_a:.2f}x | {text} |")


if __name__ == "__main__":
    app.run(main)
