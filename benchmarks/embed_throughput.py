r"""Audio clips/s and text captions/s: clap_jax against the PyTorch reference with the same weights.

    python benchmarks/embed_throughput.py --model=laion-tiny --batch_size=8 --clip_seconds=10 \
        --num_batches=5 --dtype=float32

The reference (``laion_clap`` for laion-*, ``transformers.ClapModel`` for hf-*) is built offline
with random weights, and its state dict is converted into ours in memory, so both sides run the
same network. Each side is timed end to end from raw waveforms / strings (front end, padding
and tokenisation included), warm-up (JIT compilation) excluded; the median batch time is
reported. Prints one markdown table row per run.
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

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "laion-tiny", ["laion-tiny", "laion-base", "laion-fusion", "hf-tiny"], "Model family/size.")
flags.DEFINE_integer("batch_size", 8, "Clips (and captions) per batch.")
flags.DEFINE_float("clip_seconds", 10.0, "Clip length in seconds (48 kHz).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype of our encoders.")
flags.DEFINE_integer("num_batches", 5, "Timed batches per side (after one warm-up batch).")
flags.DEFINE_integer("text_layers", 12, "RoBERTa layers (12 = roberta-base).")
flags.DEFINE_bool("header", False, "Print the table header first.")

CAPTIONS = ["a dog barks while rain falls on a tin roof", "a high beep, then rain", "a siren wails over traffic",
            "birds chirp in the morning near a river", "a clock ticking in a quiet room",
            "white noise and a rising chirp", "someone speaks, then a door slams shut",
            "an engine hums in the distance"]


def _median_rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_items / statistics.median(times)


def _tokenizer_dir() -> str:
    import tempfile
    from tokenizers import ByteLevelBPETokenizer
    out = tempfile.mkdtemp(prefix="bench_tok")
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CAPTIONS * 50, vocab_size=500, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save_model(out)
    return out


def _ours_from_laion(state_dict, tok_dir, dtype):
    """Our model with the reference's weights, converted in memory."""
    from clap_jax import api, checkpoint, convert, weights
    state = {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state_dict.items()}
    spec = convert.laion_spec(state)
    model = checkpoint.abstract_model(spec, dtype)
    weights.load_state(model, state, convert.LAION_RULES, convert.LAION_IGNORE)
    return api.from_model(spec, model, tok_dir)


def main(argv):
    del argv
    import torch
    import reference_models
    from clap_jax import convert
    torch.set_num_threads(os.cpu_count())
    dtype = jnp.bfloat16 if FLAGS.dtype == "bfloat16" else jnp.float32
    n, b = int(FLAGS.clip_seconds * 48000), FLAGS.batch_size
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((b, n))).astype(np.float32)
    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(b)]
    tok_dir = _tokenizer_dir()

    if FLAGS.model.startswith("laion"):
        amodel = "HTSAT-base" if FLAGS.model == "laion-base" else "HTSAT-tiny"
        ref = reference_models.laion_module(amodel, fusion=FLAGS.model == "laion-fusion",
                                            text_layers=FLAGS.text_layers)
        ours = _ours_from_laion(ref.model.state_dict(), tok_dir, dtype)
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
    else:
        import transformers
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

    with torch.no_grad():
        ref_a = _median_rate(ref_audio, b, FLAGS.num_batches)
        ref_t = _median_rate(ref_text, b, FLAGS.num_batches)
    our_a = _median_rate(lambda: ours.embed_audio(waves, 48000), b, FLAGS.num_batches)
    our_t = _median_rate(lambda: ours.embed_text(texts), b, FLAGS.num_batches)

    device = jax.devices()[0]
    where = f"{device.platform}:{getattr(device, 'device_kind', '')}"
    if FLAGS.header:
        print("| model | device | dtype | batch | clip s | audio clips/s (ours) | audio clips/s (ref) | speed-up "
              "| captions/s (ours) | captions/s (ref) | speed-up |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    note = " (ref: model only)" if FLAGS.model == "laion-fusion" else ""
    print(f"| {FLAGS.model}{note} | {where} | {FLAGS.dtype} | {b} | {FLAGS.clip_seconds:g} | {our_a:.2f} | {ref_a:.2f} "
          f"| {our_a / ref_a:.2f}x | {our_t:.1f} | {ref_t:.1f} | {our_t / ref_t:.2f}x |")


if __name__ == "__main__":
    app.run(main)
