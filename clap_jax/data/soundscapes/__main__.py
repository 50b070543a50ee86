"""``python -m clap_jax.data.soundscapes [--n N] [--duration S]``: generation throughput."""

from __future__ import annotations

import argparse
import time

from clap_jax.data.soundscapes.corpus import generate


def _main(argv=None):
    """``python -m clap_jax.data.soundscapes [--n N] [--duration S]``: print throughput."""
    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--no-masks", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    clips = generate(args.seed, args.n, sample_rate=args.sample_rate, duration=args.duration,
                     stft=None if args.no_masks else (1024, 320))
    dt = time.perf_counter() - t0
    secs = sum(c.duration for c in clips)
    print(f"{args.n} clips in {dt:.2f} s: {args.n / dt:.1f} clips/s, {secs / dt:.0f} audio-s/s")
    for c in clips[:3]:
        print(c.clip_id, c.labels, c.captions[0])


if __name__ == "__main__":
    _main()
