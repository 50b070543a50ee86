r"""Files on disk -> embeddings on disk: ``clap_jax.extract`` against the references' file loops.

    python benchmarks/extract_throughput.py --part=throughput --clips=48 --batch_size=8
    python benchmarks/extract_throughput.py --part=memory --memory_clips=1000,10000
    python benchmarks/extract_throughput.py --part=devices --device_counts=1,2
    python benchmarks/extract_throughput.py --part=main_job

* ``throughput``: ``--clips`` WAV files of ``--clip_seconds`` at 44.1 kHz (every side resamples
  to 48 kHz) embedded by ``clap_jax.extract`` (shards written) and by, with the same random
  weights: laion_clap's ``get_audio_embedding_from_filelist`` (HTSAT-tiny), and Hugging Face's
  ``ClapProcessor`` + ``ClapModel.get_audio_features`` over ``librosa.load``ed files (the HF
  default config), each batch's embeddings saved with ``np.save``. Compilation is excluded for
  ours (a warm-up extraction of one batch fills the cache first), model building for all.
* ``memory``: peak resident memory of a ``python -m clap_jax.extract`` process (bundled
  ``soundscapes-small``) over 1,000 and 10,000 one-second files: flat in the number of clips.
* ``devices``: clips/s of the same extraction with the CPU split into N forced host devices.
* ``main_job``: wall time of the README's main job (``python -m lmac.explain``) with an empty
  compilation cache (cold) and again (warm).

Prints one markdown table row per configuration.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

FLAGS = flags.FLAGS
flags.DEFINE_list("part", ["throughput", "memory", "devices", "main_job"], "What to measure.")
flags.DEFINE_integer("clips", 48, "throughput: files per side.")
flags.DEFINE_float("clip_seconds", 10.0, "throughput: file length (s).")
flags.DEFINE_integer("batch_size", 8, "Clips per encoder call on every side.")
flags.DEFINE_list("memory_clips", ["1000", "10000"], "memory: file counts.")
flags.DEFINE_list("device_counts", ["1", "2"], "devices: forced host device counts.")
flags.DEFINE_integer("device_clips", 256, "devices: files per run.")


def _write_files(root: str, n: int, seconds: float, rate: int) -> list[str]:
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(n):
        x = 0.2 * np.sin(2 * np.pi * (200 + 10 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = os.path.join(root, f"clip{i:05d}.wav")
        sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def _ours_extract(model, root: str, n_warm: int) -> float:
    """clips/s of clap_jax.extract over the folder, after a warm-up extraction of n_warm files."""
    from clap_jax import extract
    from clap_jax.data import datasets
    data = datasets.open_dataset("folder", root=root)
    warm = datasets.Dataset(data.records[:n_warm], data.classes, "warm-up")
    extract.extract(model, warm, tempfile.mkdtemp(prefix="warm"), batch_size=FLAGS.batch_size, progress=False)
    out = tempfile.mkdtemp(prefix="extract")
    t = time.perf_counter()
    counts = extract.extract(model, data, out, batch_size=FLAGS.batch_size, shard_size=256, progress=False)
    return counts["embedded"] / (time.perf_counter() - t)


def _batched_files(paths, embed) -> float:
    """clips/s of a reference loop: embed(paths of a batch) -> (b, d), saved with np.save."""
    import torch
    out = tempfile.mkdtemp(prefix="ref")
    with torch.no_grad():
        embed(paths[:FLAGS.batch_size])                      # warm-up (allocator, caches)
        t = time.perf_counter()
        for k, s in enumerate(range(0, len(paths), FLAGS.batch_size)):
            np.save(os.path.join(out, f"{k:05d}.npy"), np.asarray(embed(paths[s:s + FLAGS.batch_size])))
    return len(paths) / (time.perf_counter() - t)


def throughput() -> list[str]:
    import torch
    import references
    import librosa
    import reference_models
    import transformers
    from clap_jax import convert, load
    torch.set_num_threads(os.cpu_count())
    root = tempfile.mkdtemp(prefix="files")
    paths = _write_files(root, FLAGS.clips, FLAGS.clip_seconds, 44100)
    rows = []
    tok_dir = references.tokenizer_dir()
    ref = reference_models.laion_module("HTSAT-tiny", text_layers=1)
    ours = references.ours_from_laion(ref.model.state_dict(), tok_dir, np.float32)
    laion = _batched_files(paths, lambda b: ref.get_audio_embedding_from_filelist(b))
    mine = _ours_extract(ours, root, FLAGS.batch_size)
    rows.append(("laion-tiny", "laion_clap get_audio_embedding_from_filelist", mine, laion))
    print(f"laion-tiny: ours {mine:.2f} clips/s, laion_clap {laion:.2f} clips/s", flush=True)

    torch.manual_seed(0)
    hf = transformers.ClapModel(transformers.ClapConfig(text_config={"num_hidden_layers": 1})).eval()
    fe = transformers.ClapFeatureExtractor(frequency_min=50, truncation="rand_trunc")
    d = tempfile.mkdtemp(prefix="hf")
    hf.save_pretrained(d)
    fe.save_pretrained(d)
    tok = reference_models._roberta_tokenizer_from_dir(tok_dir)
    tok.save_pretrained(d)
    convert.convert("hf", d, os.path.join(d, "converted"))
    ours_hf = load(os.path.join(d, "converted"))
    processor = transformers.ClapProcessor(feature_extractor=fe, tokenizer=tok)

    def hf_embed(batch):
        waves = [librosa.load(p, sr=48000)[0] for p in batch]
        feats = processor(audio=waves, sampling_rate=48000, return_tensors="pt")
        return hf.get_audio_features(**feats).pooler_output.numpy()
    ref_rate = _batched_files(paths, hf_embed)
    rows.append(("hf-tiny", "ClapProcessor + ClapModel.get_audio_features", _ours_extract(ours_hf, root,
                                                                                        FLAGS.batch_size), ref_rate))
    out = ["| model | reference | files | clip s | batch | ours clips/s | ref clips/s | speed-up |",
           "|---|---|---|---|---|---|---|---|"]
    for name, what, a, b in rows:
        out.append(f"| {name} | {what} | {FLAGS.clips} | {FLAGS.clip_seconds:g} | {FLAGS.batch_size} | {a:.2f} "
                   f"| {b:.2f} | {a / b:.2f}x |")
    return out


_MEASURED = """import atexit, resource, runpy, sys
atexit.register(lambda: print(f"peak_rss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr))
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _command(module: str, args: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stderr) of ``python -m module args`` in a child process."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURED, module, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 3):
        raise RuntimeError(proc.stderr[-2000:])
    peak = int(proc.stderr.rsplit("peak_rss_kib=", 1)[1].split()[0])
    return wall, peak / 1024, proc.stderr


def memory() -> list[str]:
    """Each count in its own child process, which reports its own peak resident memory."""
    env = {**os.environ, "CLAP_JAX_CACHE": tempfile.mkdtemp(prefix="cache")}
    out = ["| clips | wall s | clips/s | peak RSS MiB |", "|---|---|---|---|"]
    for n in sorted(int(x) for x in FLAGS.memory_clips):
        root = tempfile.mkdtemp(prefix=f"mem{n}")
        _write_files(root, n, 1.0, 16000)
        wall, peak, _ = _command("clap_jax.extract", ["--model=soundscapes-small", "--dataset=folder",
                               f"--root={root}", f"--out={root}-out", f"--batch_size={FLAGS.batch_size * 4}",
                               "--noprogress"], env)
        out.append(f"| {n} | {wall:.1f} | {n / wall:.1f} | {peak:.0f} |")
    return out


def devices() -> list[str]:
    env = {**os.environ, "CLAP_JAX_CACHE": tempfile.mkdtemp(prefix="cache")}
    root = tempfile.mkdtemp(prefix="dev")
    _write_files(root, FLAGS.device_clips, 1.0, 16000)
    out = ["| host devices | clips | clips/s (warm cache) |", "|---|---|---|"]
    for count in FLAGS.device_counts:
        args = ["--model=soundscapes-small", "--dataset=folder", f"--root={root}",
                f"--batch_size={FLAGS.batch_size * 4}", f"--cpu_devices={count}", "--noprogress"]
        _command("clap_jax.extract", args + [f"--out={tempfile.mkdtemp()}"], env)      # fill the cache
        _, _, err = _command("clap_jax.extract", args + [f"--out={tempfile.mkdtemp()}"], env)
        rate = float(err.split("clips/s")[0].rsplit("(", 1)[1])
        out.append(f"| {count} | {FLAGS.device_clips} | {rate:.1f} |")
    return out


def main_job() -> list[str]:
    env = {**os.environ, "CLAP_JAX_CACHE": tempfile.mkdtemp(prefix="cache")}
    out = ["| main job | cache | wall s |", "|---|---|---|"]
    for label in ("cold (empty cache)", "warm (second run)"):
        wall, _, _ = _command("lmac.explain", [f"--out={tempfile.mkdtemp()}"], env)
        out.append(f"| python -m lmac.explain | {label} | {wall:.1f} |")
    return out


def main(argv):
    del argv
    import jax
    from clap_jax import runtime
    runtime.quiet_logs()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    for part in FLAGS.part:
        print("\n".join({"throughput": throughput, "memory": memory, "devices": devices,
                         "main_job": main_job}[part]()))
        print(flush=True)


if __name__ == "__main__":
    app.run(main)
