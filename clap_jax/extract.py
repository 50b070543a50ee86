r"""Embedding extraction at scale: a dataset's audio (and captions) -> embedding shards on disk.

    python -m clap_jax.extract --model=soundscapes-small --dataset=folder --root=clips/ --out=emb/
    python -m clap_jax.extract --model=DIR --dataset=captions --csv=clotho.csv --audio_dir=audio/ \
        --text --out=emb/
    ids, embeddings, rows = clap_jax.extract.read("emb/")     # memory-mapped (n, joint_dim)

The layout is :mod:`clap_jax.shards`. How the work is split and kept:

* records are cut into shards of ``--shard_size`` in dataset order; process ``p`` of ``P``
  (``jax.distributed``: one command on every host) takes shards ``k`` with ``k % P == p`` and
  writes them itself; batches are sharded over that process's local devices;
* audio is decoded and resampled in ``--workers`` threads, a few batches ahead of the devices;
* crops are deterministic: ``center`` by default; ``--crop=random`` draws each clip's window from
  ``crc32(seed:clip id)``, so a clip embeds the same on any number of devices or hosts;
* **resumable**: each shard is renamed into place complete, so rerunning the same command after
  a kill writes exactly the missing shards (``job.json`` refuses a rerun that asks for something
  else in the same ``--out``);
* a bad file is skipped, listed in its shard's ``skipped.jsonl`` and in ``manifest.json``, and
  counted on the progress bar; ``--strict`` stops at the first.

Exit status as every command (``clap_jax.cli_errors``): 0 all embedded, 3 some skipped, 1 none.
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import sys
import time
import warnings
import zlib

import jax
import numpy as np

from clap_jax import atomic, audio, batching, cli_errors, pipeline, runtime, shards
from clap_jax.data import datasets, readers
from clap_jax.shards import read  # noqa: F401  (public: clap_jax.extract.read)

SHARD_SIZE = 1024
# job.json keys that decide what the shards hold: a rerun into the same --out must match them.
_JOB_KEYS = ("format", "model_fingerprint", "dataset", "records", "shard_size", "crop", "seed", "text")


def crop_seed(seed: int, key: str) -> int:
    """The random-crop seed of one clip: a function of the run's seed and the clip id only."""
    return zlib.crc32(f"{seed}:{key}".encode())


def _job(model, model_name: str, data: datasets.Dataset, shard_size: int, crop: str, seed: int, text: bool) -> dict:
    return {"format": shards.FORMAT, "model": model_name, "model_fingerprint": model.fingerprint,
            "dataset": data.name, "records": len(data), "classes": list(data.classes), "shard_size": shard_size,
            "crop": crop, "seed": seed, "text": text, "embedding_dim": int(model.spec.model.joint_dim)}


def _claim(out: str, job: dict) -> None:
    """Writes ``job.json``, or checks that the one already in ``out`` asked for the same thing."""
    path = os.path.join(out, "job.json")
    if os.path.exists(path):
        old = shards.read_json(path)
        for key in _JOB_KEYS:
            if old.get(key) != job[key]:
                raise ValueError(f"{out}: already holds an extraction with a different {key} "
                                 f"({old.get(key)!r}, now {job[key]!r}); use a new --out")
        return
    os.makedirs(os.path.join(out, shards.SHARDS), exist_ok=True)
    shards.write_json(path, job)


def _decode(record: readers.Record, rate: int):
    """(samples at ``rate``, error): decoding, checks and resampling, run in a worker thread."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", audio.NearSilentWarning)
            return readers.load_audio(record, rate)[0], None
    except Exception as err:                      # noqa: BLE001: decoders raise many types; named later
        return None, err


def _decoded(records, indices, rate: int, workers: int, ahead: int):
    """Yields ``(i, samples or None, error)`` for ``indices`` in order, decoding up to ``ahead``
    clips ahead in ``workers`` threads."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        it = iter(indices)
        for i in it:
            pending.append((i, pool.submit(_decode, records[i], rate)))
            if len(pending) >= ahead:
                break
        while pending:
            i, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_decode, records[nxt], rate)))
            yield (i, *fut.result())


def _row(record: readers.Record, classes, crop: int, samples: int, rate: int, silent: bool) -> dict:
    return {"id": record.key, "path": record.path,
            "label": classes[record.label] if record.label is not None and classes else None,
            "labels": list(record.labels), "captions": list(record.captions),
            "crop": int(crop), "seconds": round(samples / rate, 4), "near_silent": bool(silent)}


class _Shard:
    """One shard's results as they come: embeddings and index rows of good clips, skipped rows."""

    def __init__(self, k: int):
        self.k, self.emb, self.rows, self.skipped = k, [], [], []


def extract(model, data: datasets.Dataset, out: str, *, model_name: str = "", shard_size: int = SHARD_SIZE,
            batch_size: int = batching.DEFAULT_BATCH, crop: str | None = None, seed: int = 0,
            text: bool = False, workers: int | None = None, skips=None, progress: bool = True) -> dict:
    """Extracts this process's shards of ``data`` into ``out`` (module docstring) and, on process
    0 once every shard exists, writes ``manifest.json``; returns this run's counts."""
    crop = crop or model.spec.audio.crop
    if crop not in ("center", "start", "random"):
        raise ValueError(f"--crop must be center, start or random, got {crop!r}")
    if shard_size < 1 or batch_size < 1:
        raise ValueError("--shard_size and --batch_size must be at least 1")
    if len(data) == 0:
        raise ValueError(f"{data.name}: no records to extract")
    skips = skips if skips is not None else cli_errors.Skips("clap_jax.extract")
    job = _job(model, model_name, data, shard_size, crop, seed, text)
    _claim(out, job)
    p, count = jax.process_index(), jax.process_count()
    n_shards = -(-len(data) // shard_size)
    mine = [k for k in range(n_shards) if k % count == p]
    shards.clear_partial(out, lambda k: k % count == p)
    todo = sorted(set(mine) - shards.done_shards(out))
    devices = jax.local_devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    cfg, rate = model.spec.audio, model.spec.audio.spectrogram.sample_rate
    indices = [i for k in todo for i in range(k * shard_size, min(len(data), (k + 1) * shard_size))]
    total = sum(min(len(data), (k + 1) * shard_size) - k * shard_size for k in mine)
    bar = None
    if progress:
        import tqdm
        bar = tqdm.tqdm(total=total, initial=total - len(indices), unit="clip", desc="extract", file=sys.stderr)
    counts = {"embedded": 0, "skipped": 0, "shards_written": 0, "seconds": 0.0}
    start_time = time.perf_counter()
    pending: list[tuple[int, np.ndarray]] = []          # (record index, samples) waiting for a batch
    current: _Shard | None = None

    def skip(i: int, why) -> None:
        record = data.records[i]
        name = record.path or record.key
        skips(name, why)
        current.skipped.append({"id": record.key, "path": record.path, "reason": cli_errors.reason(name, why)})
        counts["skipped"] += 1

    def flush() -> None:
        if not pending:
            return
        idx = [i for i, _ in pending]
        clips = [(x, rate) for _, x in pending]
        seeds = [crop_seed(seed, data.records[i].key) for i in idx] if crop == "random" else None
        batch = pipeline.prepare(clips, cfg, crop, seeds)
        emb = model.embed_prepared(batch, sharding, multiple=len(devices), batch_size=batch_size)
        for j, i in enumerate(idx):
            if not np.isfinite(emb[j]).all():
                skip(i, "the embedding is not finite")
                continue
            x = pending[j][1]
            current.emb.append(emb[j])
            current.rows.append(_row(data.records[i], data.classes, batch.crops[j], len(x), rate,
                                     audio.is_near_silent(x)))
        pending.clear()

    def finish() -> None:
        flush()
        texts, text_rows = None, []
        if text:
            text_rows = [{"id": r["id"], "caption": c} for r in current.rows for c in r["captions"]]
            texts = (model.embed_text([t["caption"] for t in text_rows], batch_size=batch_size) if text_rows
                     else np.zeros((0, job["embedding_dim"]), np.float32))
        emb = np.stack(current.emb) if current.emb else np.zeros((0, job["embedding_dim"]), np.float32)
        shards.write_shard(out, current.k, emb, current.rows, current.skipped, texts, text_rows)
        counts["shards_written"] += 1

    for i, x, err in _decoded(data.records, indices, rate, workers or min(8, os.cpu_count() or 1),
                              ahead=4 * batch_size):
        k = i // shard_size
        if current is None or current.k != k:
            if current is not None:
                finish()
            current = _Shard(k)
        if err is not None:
            if isinstance(err, (KeyboardInterrupt, MemoryError)):
                raise err
            skip(i, err)
        else:
            pending.append((i, x))
            if len(pending) == batch_size:
                flush()
        if bar:
            bar.update(1)
            bar.set_postfix(skipped=counts["skipped"], refresh=False)
    if current is not None:
        finish()
    if bar:
        bar.close()
    counts["embedded"] = len(indices) - counts["skipped"]
    counts["seconds"] = round(time.perf_counter() - start_time, 3)
    if count > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("clap_jax.extract: shards written")
    if p == 0:
        write_manifest(out)
    return counts


def write_manifest(out: str) -> dict:
    """``manifest.json`` from the job and every shard: counts, the skipped files and why, and
    ``complete`` (whether every shard exists; missing ones are listed)."""
    job = shards.read_json(os.path.join(out, "job.json"))
    n_shards = -(-job["records"] // job["shard_size"])
    done = shards.done_shards(out)
    embedded, skipped = 0, []
    for k in sorted(done):
        d = shards.shard_dir(out, k)
        embedded += len(shards.read_jsonl(os.path.join(d, "index.jsonl")))
        skipped += shards.read_jsonl(os.path.join(d, "skipped.jsonl"))
    manifest = {"format": shards.FORMAT, "job": job, "model": job["model"],
                "model_fingerprint": job["model_fingerprint"], "records": job["records"],
                "embedded": embedded, "skipped": len(skipped), "skipped_files": skipped, "shards": len(done),
                "complete": len(done) == n_shards, "missing_shards": sorted(set(range(n_shards)) - done)}
    shards.write_json(os.path.join(out, "manifest.json"), manifest)
    return manifest


def _define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("model", "soundscapes-small", "Converted model directory or bundled name.")
    datasets.define_flags("folder")
    flags.DEFINE_string("out", None, "Output folder (shards, index, manifest); rerun the same command to resume.")
    flags.DEFINE_boolean("text", False, "Also embed each clip's captions (captions datasets).")
    flags.DEFINE_string("text_file", None, "Also embed every line of this text file (texts.npy, texts.jsonl).")
    flags.DEFINE_integer("shard_size", SHARD_SIZE, "Clips per shard (the unit of resumption).")
    flags.DEFINE_integer("batch_size", batching.DEFAULT_BATCH, "Clips per encoder call, split over local devices.")
    flags.DEFINE_enum("crop", None, ["center", "start", "random"], "Window of long clips (default: the model's).")
    flags.DEFINE_integer("crop_seed", 0, "--crop=random: each clip's window comes from crc32(crop_seed:clip id).")
    flags.DEFINE_integer("workers", None, "Decoding threads (default min(8, CPUs)).")
    flags.DEFINE_boolean("strict", False, "Stop at the first bad file instead of skipping it.")
    flags.DEFINE_boolean("progress", True, "Progress bar (clips/s, skipped) on stderr.")
    flags.DEFINE_boolean("distributed", False, "Multi-host: jax.distributed.initialize() (arguments from the "
                         "cluster environment or the three flags below); run the same command on every host.")
    runtime.define_distributed_flags()
    flags.DEFINE_integer("cpu_devices", None, "Split the CPU into this many devices (benchmarks, tests).")
    flags.mark_flag_as_required("out")


def _write_texts(model, path: str, out: str, batch_size: int) -> int:
    """Embeds every non-empty line of ``path`` into ``out/texts.npy`` + ``texts.jsonl`` (once)."""
    if os.path.exists(os.path.join(out, "texts.npy")):
        return 0
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise ValueError(f"--text_file={path}: no text lines")
    emb = model.embed_text(lines, batch_size=batch_size)
    shards.write_json(os.path.join(out, "texts.json"), {"texts": lines})
    with atomic.path(os.path.join(out, "texts.npy")) as tmp, open(tmp, "wb") as f:
        np.save(f, emb)
    return len(lines)


@cli_errors.guard("clap_jax.extract")
def main(argv) -> int:
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    from absl import flags
    import clap_jax
    F = flags.FLAGS
    if F.cpu_devices:
        jax.config.update("jax_num_cpu_devices", F.cpu_devices)
    if F.distributed:
        runtime.start_distributed()
    if F.text_file and not os.path.isfile(F.text_file):
        raise FileNotFoundError(f"--text_file={F.text_file}: no such file")
    os.makedirs(F.out, exist_ok=True)
    if not os.access(F.out, os.W_OK | os.X_OK):
        raise PermissionError(f"--out={F.out}: not writable")
    model = clap_jax.load(F.model)
    data = datasets.from_flags(model.spec.audio.spectrogram.sample_rate)
    skips = cli_errors.Skips("clap_jax.extract", F.strict)
    counts = extract(model, data, F.out, model_name=F.model, shard_size=F.shard_size, batch_size=F.batch_size,
                     crop=F.crop, seed=F.crop_seed, text=F.text, workers=F.workers, skips=skips,
                     progress=F.progress and sys.stderr.isatty())
    if F.text_file and jax.process_index() == 0:
        _write_texts(model, F.text_file, F.out, F.batch_size)
    rate = counts["embedded"] / max(counts["seconds"], 1e-9)
    print(f"clap_jax.extract: process {jax.process_index()}: {counts['embedded']} clips embedded, "
          f"{counts['skipped']} skipped, {counts['shards_written']} shards written in {counts['seconds']:.1f} s "
          f"({rate:.1f} clips/s) to {F.out}", file=sys.stderr)
    manifest_path = os.path.join(F.out, "manifest.json")
    if jax.process_index() == 0 and os.path.exists(manifest_path):
        m = shards.read_json(manifest_path)
        print(f"clap_jax.extract: {m['embedded']} of {m['records']} clips in {m['shards']} shards"
              + (f", {m['skipped']} skipped (listed in {manifest_path})" if m["skipped"] else "")
              + ("" if m["complete"] else f"; shards still missing: {m['missing_shards'][:10]}"), file=sys.stderr)
        if m["embedded"] == 0:
            return cli_errors.FAILED
        return cli_errors.PARTIAL if m["skipped"] else cli_errors.OK
    return skips.exit_code(counts["embedded"])


if __name__ == "__main__":
    _define_flags()
    runtime.run(main)
