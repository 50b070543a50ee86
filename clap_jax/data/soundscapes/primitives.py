"""Signal primitives of the synthesisers: numpy, float32 ``(n,)`` unless said otherwise.

    draws (_u, _lu) -> phase (_cycles_const, _cycles) -> oscillators (_sin, _harmonic
    wavetables, _partials decaying sines) + noise (_white, _colored FFT-shaped, _filter, _bp,
    _power, _peak) -> envelopes and events (_ramp, _gate, _slow, _decay_env, _env_train,
    _poisson_env, _pattern) -> grains overlap-added (_ring_grains, _place)

Times ``t`` in seconds, frequencies ``f`` in Hz, ``sr`` the sample rate, ``rng`` a
``np.random.Generator``.  Every draw's order is part of the corpus: a change here changes
every clip (the bundled models were trained on them).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft
from scipy.fft import next_fast_len
from scipy.signal import lfilter

F32 = np.float32
TWO_PI = np.float32(2.0 * np.pi)
_WT = 2048  # wavetable length (samples per cycle)


def _u(rng, lo_hi) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _lu(rng, lo_hi) -> float:
    """Log-uniform draw (for frequencies and rates)."""
    return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def _time(n: int, sr: int) -> np.ndarray:
    """float64 ``(n,)`` sample times in seconds."""
    return np.arange(n, dtype=np.float64) / sr


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _cycles_const(f: float, n: int, sr: int, block: int = 256) -> np.ndarray:
    """Phase in cycles, wrapped to [0, 1), float32 ``(n,)``, of a constant frequency ``f``.

    Sample ``q * block + r`` has phase ``frac(q * block * f / sr) + frac(r * f / sr)``
    (both terms exact in float64, summed in float32), so precision does not degrade with n.
    """
    coarse = _frac(np.arange(-(-n // block)) * (block * f / sr)).astype(F32)
    fine = _frac(np.arange(block) * (f / sr)).astype(F32)
    ph = (coarse[:, None] + fine[None, :]).ravel()[:n]
    return ph - np.floor(ph)


def _cycles(f: np.ndarray, sr: int) -> np.ndarray:
    """Phase in cycles, wrapped to [0, 1), of an instantaneous-frequency track ``f`` (Hz)."""
    return _frac(np.cumsum(f, dtype=np.float64) / sr)


def _sin(cycles: np.ndarray) -> np.ndarray:
    return np.sin(TWO_PI * cycles.astype(F32))


def _band_limit(amps, f_max: float, sr: int) -> np.ndarray:
    """Drop harmonics ``k * f_max`` above 0.45 * sr (``amps[k-1]`` is harmonic k)."""
    amps = np.asarray(amps, dtype=np.float64)
    k_max = max(1, int(0.45 * sr / max(f_max, 1.0)))
    return amps[:k_max]


def _table(amps) -> np.ndarray:
    """One cycle of ``sum_k amps[k-1] sin(2 pi k x)``, float32 ``(_WT + 1,)`` (wraps)."""
    amps = np.asarray(amps, dtype=np.float64)[: _WT // 2 - 1]
    spec = np.zeros(_WT // 2 + 1, dtype=np.complex128)
    spec[1 : len(amps) + 1] = -0.5j * _WT * amps
    tab = np.fft.irfft(spec, _WT).astype(F32)
    return np.concatenate([tab, tab[:1]])


def _harmonic(cycles: np.ndarray, amps, f_max: float, sr: int) -> np.ndarray:
    """Band-limited harmonic tone by wavetable lookup (linear interpolation).

    cycles: phase in cycles in [0, 1), ``(n,)``; amps: harmonic amplitudes (1, 2, ...);
    f_max: highest fundamental the phase reaches (Hz), for band limiting.
    """
    tab = _table(_band_limit(amps, f_max, sr))
    pos = cycles * _WT
    i = pos.astype(np.intp)
    fr = (pos - i).astype(F32)
    i &= _WT - 1  # pos == _WT (rounding) wraps to 0 with fr == 0
    lo = tab[i]
    return lo + fr * (tab[i + 1] - lo)


def _partials(n: int, sr: int, freqs, amps, taus, phases=None, block: int = 256) -> np.ndarray:
    """Sum of exponentially decaying sines: ``sum_k a_k exp(-t/tau_k) sin(2 pi f_k t + p_k)``.

    freqs (Hz), amps, taus (s), phases (rad): ``(K,)``; partials above 0.45 * sr are
    dropped.  Writing ``t = t_coarse + t_fine`` (blocks of ``block`` samples) turns the sum
    into one ``(Q, 2K) @ (2K, block)`` matrix product (angle-addition formula), so the cost
    per sample is ~4K multiply-adds instead of K sines and K exponentials.
    """
    freqs, amps, taus = (np.asarray(v, dtype=np.float64) for v in (freqs, amps, taus))
    keep = freqs < 0.45 * sr
    freqs, amps, taus = freqs[keep], amps[keep], taus[keep]
    phases = np.zeros_like(freqs) if phases is None else np.asarray(phases, np.float64)[keep]
    if len(freqs) == 0:
        return np.zeros(n, F32)
    w = 2 * np.pi * freqs[:, None]
    tq = np.arange(-(-n // block))[None, :] * (block / sr)  # (1, Q) block start times
    tr = np.arange(block)[None, :] / sr  # (1, block)
    eq = amps[:, None] * np.exp(-tq / taus[:, None])
    eq[eq < 1e-20] = 0.0  # keep float32 away from denormals
    er = np.exp(-tr / taus[:, None])
    arg = w * tq + phases[:, None]
    left = np.concatenate([eq * np.sin(arg), eq * np.cos(arg)])
    right = np.concatenate([er * np.cos(w * tr), er * np.sin(w * tr)])
    return (left.T.astype(F32) @ right.astype(F32)).ravel()[:n]


_WHITE_STD = float(np.sqrt((256.0**2 - 1.0) / 12.0))


def _white(rng, shape) -> np.ndarray:
    """Zero-mean, unit-variance white noise, float32 ``shape``.

    Uniform on 256 levels from ``rng.bytes`` (several times faster than
    ``standard_normal``); sums of many of them (any filtering) are Gaussian.
    """
    size = int(np.prod(shape))
    b = np.frombuffer(rng.bytes(size), dtype=np.int8).astype(F32)
    return ((b + F32(0.5)) * F32(1.0 / _WHITE_STD)).reshape(shape)


def _burst(rng, n: int, sr: int, tau: float) -> np.ndarray:
    """A short noise burst ``exp(-t/tau)``, float32 of length ``min(n, 8 tau sr)``."""
    L = max(1, min(n, int(8 * tau * sr)))
    return _white(rng, L) * _decay_env(L, sr, [tau])[0]


def _add(x: np.ndarray, y: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """``x[:len(y)] += gain * y`` in place; returns x."""
    x[: len(y)] += F32(gain) * y
    return x


@functools.lru_cache(maxsize=64)
def _rfftfreq(m: int, sr: int) -> np.ndarray:
    return np.fft.rfftfreq(m, 1.0 / sr).astype(F32)


def _fast_len(n: int) -> int:
    return next_fast_len(max(n, 2), real=True)


def _rms(x: np.ndarray) -> float:
    """Root mean square of a 1-D array."""
    return math.sqrt(max(float(np.dot(x, x)), 0.0) / len(x)) if len(x) else 0.0


def _normalise(x: np.ndarray) -> np.ndarray:
    rms = _rms(x)
    return (x * F32(1.0 / rms)).astype(F32, copy=False) if rms > 0 else x.astype(F32, copy=False)


def _colored(rng, n: int, sr: int, gain=None) -> np.ndarray:
    """Gaussian noise with magnitude response ``gain(f)`` (f in Hz), unit RMS, ``(n,)``."""
    m = _fast_len(n)
    nf = m // 2 + 1
    re_im = _white(rng, (2, nf))
    spec = re_im[0] + 1j * re_im[1]
    spec[0] = 0.0
    if gain is not None:
        spec *= gain(_rfftfreq(m, sr))
    return _normalise(sfft.irfft(spec, m)[:n])


def _filter(x: np.ndarray, sr: int, gain) -> np.ndarray:
    """Zero-phase filter ``x`` (..., n) with magnitude response ``gain(f)`` via FFT."""
    n = x.shape[-1]
    m = _fast_len(n + min(n, 1024))
    spec = sfft.rfft(x, m, axis=-1)
    spec *= gain(_rfftfreq(m, sr))
    return sfft.irfft(spec, m, axis=-1)[..., :n].astype(F32, copy=False)


def _bp(lo=None, hi=None, order=2):
    """Butterworth-like magnitude response: high-pass at ``lo`` and/or low-pass at ``hi`` Hz."""

    def gain(f):
        g = np.ones_like(f)
        if lo is not None:
            g /= np.sqrt(1.0 + (lo / np.maximum(f, 1.0)) ** (2 * order))
        if hi is not None:
            g /= np.sqrt(1.0 + (f / hi) ** (2 * order))
        return g

    return gain


def _power(exponent: float, lo: float = 20.0):
    """``f ** exponent`` above ``lo`` Hz (exponent -0.5: pink, -1: brown), flat below."""
    return lambda f: np.maximum(f, lo) ** exponent


def _peak(f, fc: float, bw: float):
    """Resonance (Lorentzian) magnitude at ``f`` for centre ``fc`` and bandwidth ``bw`` Hz."""
    return 1.0 / (1.0 + ((f - fc) / (0.5 * bw)) ** 2)


def _formant_amps(f0: float, formants, n_harm: int, tilt: float = 1.0) -> np.ndarray:
    """Harmonic amplitudes of a voice: source ``1/k**tilt`` times formant resonances.

    formants: ((frequency Hz, bandwidth Hz, gain), ...).
    """
    fk = f0 * np.arange(1, n_harm + 1)
    g = sum(a * _peak(fk, fc, bw) for fc, bw, a in formants) + 0.02
    return g / np.arange(1, n_harm + 1) ** tilt


def _ramp(x: np.ndarray, sr: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine fade in/out of ``attack``/``release`` seconds, in place; returns x."""
    n = len(x)
    for length, sl in ((attack, slice(None)), (release, slice(None, None, -1))):
        m = min(int(length * sr), n // 2)
        if m > 0:
            w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(m, dtype=F32) + 0.5) / m)).astype(F32)
            x[sl][:m] *= w
    return x


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _gate(t: np.ndarray, period: float, on: float, edge: float = 0.004) -> np.ndarray:
    """Periodic on/off gate (1 for ``on`` s of every ``period`` s) with smooth edges."""
    tp = np.mod(t, period)
    return _smoothstep(np.minimum(tp, on - tp) / edge).astype(F32)


def _slow(rng, n: int, sr: int, rate: float, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """Smooth random curve in [lo, hi]: cosine interpolation of knots ``rate`` per second."""
    k = int(n / sr * rate) + 2
    knots = rng.uniform(lo, hi, k)
    fine = np.linspace(0.0, k - 1, 16 * (k - 1) + 1)  # 16 cosine-interpolated points per knot
    i = np.minimum(fine.astype(np.intp), k - 2)
    w = 0.5 - 0.5 * np.cos(np.pi * (fine - i))
    curve = knots[i] * (1 - w) + knots[i + 1] * w
    return np.interp(np.arange(n) * (rate / sr), fine, curve).astype(F32)


def _place(n: int, starts, grains: np.ndarray) -> np.ndarray:
    """Overlap-add grains ``(G, L)`` at sample offsets ``starts (G,)`` into ``(n,)``."""
    starts = np.asarray(starts, dtype=np.intp)
    if grains.size == 0:
        return np.zeros(n, F32)
    idx = starts[:, None] + np.arange(grains.shape[1])
    ok = (idx >= 0) & (idx < n)
    return np.bincount(idx[ok], weights=grains[ok], minlength=n)[:n].astype(F32)


def _decay_env(L: int, sr: int, taus, attack: float = 0.0005) -> np.ndarray:
    """``(G, L)`` envelopes: linear attack of ``attack`` s then ``exp(-t/tau)``."""
    t = (np.arange(L, dtype=F32) / sr)[None, :]
    taus = np.asarray(taus, dtype=F32)[:, None]
    return np.minimum(t / attack, 1.0) * np.exp(-t / taus)


def _ring_grains(rng, L: int, sr: int, freqs, taus, noise_mix: float = 0.5) -> np.ndarray:
    """Click/knock grains ``(G, L)``: decaying sine at ``freqs`` plus a shorter noise burst."""
    freqs = np.asarray(freqs, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    t = np.arange(L, dtype=np.float64) / sr
    ph = rng.uniform(0, 1, (len(freqs), 1))
    tone = np.sin(TWO_PI * _frac(np.outer(freqs, t) + ph).astype(F32))
    noise = _white(rng, (len(freqs), L))
    noise *= _decay_env(L, sr, taus / 3)
    return (tone * _decay_env(L, sr, taus) + noise_mix * noise).astype(F32)


def _env_train(n: int, sr: int, times, amps, taus, attack: float = 0.0005) -> np.ndarray:
    """Sum of attack/decay envelopes starting at ``times`` (s) with heights ``amps``."""
    taus = np.broadcast_to(np.asarray(taus, dtype=F32), np.shape(times))
    L = min(n, int(5 * float(np.max(taus)) * sr) + 2)
    env = _decay_env(L, sr, taus, attack) * np.asarray(amps, dtype=F32)[:, None]
    return _place(n, np.round(np.asarray(times) * sr), env)


def _poisson_env(rng, n: int, sr: int, rate: float, tau: float, sigma: float = 0.8) -> np.ndarray:
    """Random impulses (``rate`` per s, log-normal heights) through a one-pole decay ``tau`` s."""
    k = int(rng.poisson(rate * n / sr))
    imp = np.bincount(rng.integers(0, n, k), weights=rng.lognormal(0.0, sigma, k), minlength=n)
    return lfilter([1.0], [1.0, -math.exp(-1.0 / (tau * sr))], imp).astype(F32)


def _pattern(dur: float, period: float, call: float, jitter: float, rng) -> np.ndarray:
    """Start times (s) of calls of length ``call`` repeated every ~``period`` s within ``dur``.

    The first call starts at 0 and the last one ends at ``dur`` (when more than one fits).
    """
    count = max(1, 1 + int((dur - call) / period))
    if count == 1:
        return np.zeros(1)
    times = np.linspace(0.0, dur - call, count)
    times[1:-1] += rng.uniform(-jitter, jitter, count - 2) * (dur - call) / (count - 1)
    return times



@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, float32 ``(n_fft,)`` (for the synthesisers; the masks use
    :func:`clap_jax.frontend.window`)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(F32)
