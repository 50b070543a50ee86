"""Write soundscapes clips in the ESC-50 and Clotho folder layouts.

ESC-50 (``export_esc50``)::

    out_dir/audio/{fold}-{clip_id}-{take}-{target}.wav   16-bit PCM
    out_dir/meta/esc50.csv                 filename,fold,target,category,esc10,src_file,take
    out_dir/meta/soundscapes_labels.csv    one row per event (all labels, onsets, offsets)
    out_dir/masks/{clip_id}.npz            ground-truth masks (see :func:`save_masks`)

ESC-50 is single-label: ``target``/``category`` are those of the clip's first event (by
onset); the full multi-label ground truth is in ``soundscapes_labels.csv``.

Clotho (``export_clotho``)::

    out_dir/clotho_audio_{split}/{clip_id}.wav          16-bit PCM
    out_dir/clotho_captions_{split}.csv   file_name,caption_1,...,caption_5
    out_dir/masks/{clip_id}.npz

with ``split`` from :func:`clap_jax.data.soundscapes.split_for` (development, validation,
evaluation); a CSV is written for every split, possibly with a header only.

Every file is written to a temporary name in the same folder and moved into place with
``os.replace`` (:mod:`clap_jax.atomic`), so an interrupted export never leaves a half-written CSV, WAV or NPZ
(at worst a stray ``*.tmp`` file).  CSVs are written once, after all the audio.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from clap_jax import atomic
from clap_jax.data.soundscapes import SPLITS, Clip

__all__ = [
    "ESC50_COLUMNS",
    "LABEL_COLUMNS",
    "esc50_filename",
    "export_clotho",
    "export_esc50",
    "load_masks",
    "save_masks",
]

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
LABEL_COLUMNS = ("filename", "clip_id", "fold", "event", "class_id", "target", "onset",
                 "offset", "level_db", "pitch_hz", "background")
N_CLOTHO_CAPTIONS = 5


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    with atomic.path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def _write_wav(path: Path, clip: Clip) -> None:
    """16-bit PCM WAV (the audio's peak is <= 0.98, so nothing clips)."""
    with atomic.path(path) as tmp:
        sf.write(tmp, clip.audio, clip.sample_rate, subtype="PCM_16", format="WAV")


def save_masks(clip: Clip, path: str | os.PathLike) -> bool:
    """Save a clip's ground truth as a compressed NPZ; False (nothing written) without masks.

    Keys: ``mask_{j}`` bool ``(frames, n_fft // 2 + 1)`` for event j (onset order),
    ``class_ids`` (str), ``onsets``/``offsets`` (s), ``level_db``, ``pitch_hz`` (NaN if
    none), ``n_fft``, ``hop``, ``sample_rate``, ``n_samples``.
    """
    if clip.stft is None:
        return False
    arrays = {f"mask_{j}": e.mask for j, e in enumerate(clip.events)}
    arrays.update(
        class_ids=np.array([e.class_id for e in clip.events]),
        onsets=np.array([e.onset for e in clip.events]),
        offsets=np.array([e.offset for e in clip.events]),
        level_db=np.array([e.level_db for e in clip.events]),
        pitch_hz=np.array([np.nan if e.pitch_hz is None else e.pitch_hz for e in clip.events]),
        n_fft=np.array(clip.stft[0]),
        hop=np.array(clip.stft[1]),
        sample_rate=np.array(clip.sample_rate),
        n_samples=np.array(len(clip.audio)),
    )
    path = Path(path)
    with atomic.path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(f, **arrays)
    return True


def load_masks(path: str | os.PathLike) -> dict[str, object]:
    """Read :func:`save_masks` output: the arrays above plus ``masks`` (list, onset order)."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    out["masks"] = [out.pop(f"mask_{j}") for j in range(len(out["class_ids"]))]
    return out


def esc50_filename(clip: Clip, take: str = "A") -> str:
    """``{fold}-{clip_id}-{take}-{target}.wav``."""
    return f"{clip.fold}-{clip.clip_id}-{take}-{clip.target}.wav"


def _label_rows(clip: Clip, filename: str) -> list[list[object]]:
    return [
        [filename, clip.clip_id, clip.fold, j, e.class_id, e.target, f"{e.onset:.6f}",
         f"{e.offset:.6f}", f"{e.level_db:.3f}", "" if e.pitch_hz is None else f"{e.pitch_hz:.3f}",
         clip.background or ""]
        for j, e in enumerate(clip.events)
    ]


def export_esc50(clips: Iterable[Clip], out_dir: str | os.PathLike, take: str = "A",
                 masks: bool = True) -> Path:
    """Write ``clips`` (any iterable, consumed once) in the ESC-50 layout; returns the CSV path."""
    out = Path(out_dir)
    rows, label_rows = [], []
    for clip in clips:
        name = esc50_filename(clip, take)
        _write_wav(out / "audio" / name, clip)
        if masks:
            save_masks(clip, out / "masks" / f"{clip.clip_id}.npz")
        first = clip.events[0]
        rows.append([name, clip.fold, first.target, first.class_id, "False", clip.clip_id, take])
        label_rows.extend(_label_rows(clip, name))
    _write_csv(out / "meta" / "soundscapes_labels.csv", LABEL_COLUMNS, label_rows)
    csv_path = out / "meta" / "esc50.csv"
    _write_csv(csv_path, ESC50_COLUMNS, rows)
    return csv_path


def _five(captions: list[str]) -> list[str]:
    """Exactly 5 captions: the first five, cycling if there are fewer."""
    if not captions:
        raise ValueError("a clip needs at least one caption")
    return [captions[i % len(captions)] for i in range(N_CLOTHO_CAPTIONS)]


def export_clotho(clips: Iterable[Clip], out_dir: str | os.PathLike,
                  masks: bool = True) -> dict[str, Path]:
    """Write ``clips`` in the Clotho layout; returns ``{split: captions CSV path}``."""
    out = Path(out_dir)
    rows: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    for clip in clips:
        name = f"{clip.clip_id}.wav"
        _write_wav(out / f"clotho_audio_{clip.split}" / name, clip)
        if masks:
            save_masks(clip, out / "masks" / f"{clip.clip_id}.npz")
        rows[clip.split].append([name, *_five(clip.captions)])
    header = ["file_name"] + [f"caption_{i}" for i in range(1, N_CLOTHO_CAPTIONS + 1)]
    paths = {}
    for split, split_rows in rows.items():
        paths[split] = out / f"clotho_captions_{split}.csv"
        _write_csv(paths[split], header, split_rows)
    return paths


def _main(argv=None):
    """``python -m clap_jax.data.export {esc50,clotho} OUT_DIR --n N [--seed S] ...``."""
    import argparse

    from clap_jax.data.soundscapes import SoundscapeConfig, iter_clips

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("layout", choices=("esc50", "clotho"))
    ap.add_argument("out_dir")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--max-events", type=int, default=3)
    ap.add_argument("--single-event", action="store_true")
    ap.add_argument("--no-background", action="store_true")
    ap.add_argument("--no-masks", action="store_true")
    a = ap.parse_args(argv)
    cfg = SoundscapeConfig(sample_rate=a.sample_rate, duration=a.duration, max_events=a.max_events,
                           single_event=a.single_event, background=not a.no_background,
                           stft=None if a.no_masks else (1024, 320))
    clips = iter_clips(a.seed, a.n, a.start, cfg)
    if a.layout == "esc50":
        print(export_esc50(clips, a.out_dir, masks=not a.no_masks))
    else:
        for path in export_clotho(clips, a.out_dir, masks=not a.no_masks).values():
            print(path)


if __name__ == "__main__":
    _main()
