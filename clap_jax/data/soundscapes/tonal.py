"""Pitched synthesisers: tones, sweeps, bells, instruments, animal and human voices.

    (rng, n samples, sample_rate, params) -> (signal float32 (<= n,), pitch Hz)

Built from wavetables (``_harmonic``) and decaying partials (``_partials``) on a phase track,
voices from formant-shaped harmonics (``_voice``); registered in
:data:`~clap_jax.data.soundscapes.registry.SYNTHS` under the ``SoundClass.synth`` names.
Noise-driven and mechanical sources (drums, clicks, noise, nature, machines, applause,
backgrounds) are in :mod:`~clap_jax.data.soundscapes.noisy`. One module of ~400 lines on purpose:
splitting it again would part the voice helpers from the voices that use them.
"""

from __future__ import annotations

import math

import numpy as np

from clap_jax.data.soundscapes.primitives import (
    F32, TWO_PI, _add, _bp, _burst, _colored, _cycles, _cycles_const, _env_train, _formant_amps,
    _frac, _gate, _hann, _harmonic, _lu, _partials, _pattern, _peak, _place, _ramp, _rms, _sin,
    _slow, _smoothstep, _time, _u)
from clap_jax.data.soundscapes.registry import synth

# Tones, sweeps, bells and instruments ---------------------------------------------------


@synth("beep")
def _s_beep(rng, n, sr, p):
    f = _lu(rng, p["f"])
    return _ramp(_sin(_cycles_const(f, n, sr)), sr, 0.012, 0.012), f


@synth("alarm")
def _s_alarm(rng, n, sr, p):
    f = _lu(rng, p["f"])
    on, off = _u(rng, p["on"]), _u(rng, p["off"])
    x = _harmonic(_cycles_const(f, n, sr), [1, 0, 1 / 3, 0, 1 / 5, 0, 1 / 7], f, sr)
    return x * _gate(_time(n, sr), on + off, on), f


@synth("phone")
def _s_phone(rng, n, sr, p):
    f1 = _lu(rng, p["f"])
    f2 = f1 * _u(rng, (1.08, 1.2))
    t = _time(n, sr)
    on, off = _u(rng, p["on"]), _u(rng, p["off"])
    tone = _harmonic(_cycles_const(f1, n, sr), [1, 0.3, 0.1], f1, sr) + _harmonic(
        _cycles_const(f2, n, sr), [1, 0.3, 0.1], f2, sr)
    clapper = (0.6 + 0.4 * np.sin(TWO_PI * F32(20.0) * t.astype(F32))).astype(F32)
    return tone * clapper * _gate(t, on + off, on, 0.01), f1


@synth("chirp")
def _s_chirp(rng, n, sr, p):
    f0, f1 = _lu(rng, p["f0"]), _lu(rng, p["f1"])
    if p["direction"] < 0:
        f0, f1 = f1, f0
    T = n / sr
    k = f1 / f0
    t = _time(n, sr)
    cyc = _frac(f0 * T / math.log(k) * (np.power(k, t / T) - 1.0))
    return _ramp(_sin(cyc), sr, 0.01, 0.03), math.sqrt(f0 * f1)


@synth("siren")
def _s_siren(rng, n, sr, p):
    fc, depth, rate = _lu(rng, p["f"]), _u(rng, p["depth"]), _lu(rng, p["rate"])
    t = _time(n, sr)
    f = fc * (1.0 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    x = _harmonic(_cycles(f, sr), [1, 0.4, 0.2, 0.1, 0.05], fc * (1 + depth), sr)
    return _ramp(x, sr, 0.05, 0.1), fc


_BELL_RATIOS = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.5, 2.66, 3.01, 4.17, 5.43])
_BELL_AMPS = np.array([0.6, 1.0, 0.8, 0.5, 0.9, 0.4, 0.35, 0.3, 0.2, 0.15])
_BELL_TAUS = np.array([1.6, 1.0, 0.9, 0.7, 0.6, 0.5, 0.45, 0.4, 0.3, 0.25])


@synth("bell")
def _s_bell(rng, n, sr, p):
    f = _lu(rng, p["f"])
    freqs = f * _BELL_RATIOS * (1 + rng.uniform(-0.005, 0.005, len(_BELL_RATIOS)))
    x = _partials(n, sr, freqs, _BELL_AMPS, _u(rng, p["tau"]) * _BELL_TAUS,
                  rng.uniform(0, 2 * np.pi, len(freqs)))
    return _add(x, _burst(rng, n, sr, 0.003), 0.3), f


@synth("gong")
def _s_gong(rng, n, sr, p):
    f = _lu(rng, p["f"])
    ratios = np.concatenate([[1.0], np.sort(rng.uniform(1.1, 8.0, 13))])
    amps = rng.uniform(0.4, 1.0, len(ratios)) / ratios ** 0.6
    taus = _u(rng, p["tau"]) / ratios ** 0.4
    x = _partials(n, sr, f * ratios, amps, taus, rng.uniform(0, 2 * np.pi, len(ratios)))
    swell = _smoothstep(_time(n, sr) / _u(rng, (0.03, 0.08))).astype(F32)
    return x * swell, f


@synth("glass")
def _s_glass(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    ratios, amps = np.array([1.0, 2.32, 4.25]), np.array([1.0, 0.5, 0.25])
    taus = tau * np.array([1.0, 0.5, 0.25])
    x = _partials(n, sr, f * ratios, amps, taus)
    if rng.random() < 0.5:  # a second glass answers
        d = int(_u(rng, (0.06, 0.2)) * sr)
        if d < n:
            x[d:] += 0.6 * _partials(n - d, sr, f * 1.03 * ratios, amps, taus)
    return x, f


@synth("doorbell")
def _s_doorbell(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    ratios, amps = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.2, 0.08])
    taus = tau * np.array([1.0, 0.5, 0.3])
    x = _partials(n, sr, f * ratios, amps, taus)
    d = min(int(_u(rng, (0.45, 0.7)) * sr), int(0.6 * n))
    x[d:] += _partials(n - d, sr, 0.8 * f * ratios, amps, taus)
    return x, f


_PENTATONIC = np.array([1.0, 9 / 8, 5 / 4, 3 / 2, 5 / 3, 2.0])


@synth("chimes")
def _s_chimes(rng, n, sr, p):
    base, rate, tau = _lu(rng, p["f"]), _u(rng, p["rate"]), _u(rng, p["tau"])
    m = max(3, int(rate * n / sr))
    starts = np.sort(rng.integers(0, max(1, n - int(0.1 * sr)), m))
    starts[0] = 0
    notes = base * _PENTATONIC[rng.integers(0, len(_PENTATONIC), m)]
    amps = rng.uniform(0.4, 1.0, m)
    x = np.zeros(n, F32)
    for s, f, a in zip(starts, notes, amps):
        L = min(n - s, int(4 * tau * sr))
        x[s:s + L] += a * _partials(L, sr, f * np.array([1.0, 2.756, 5.404]),
                                    [1.0, 0.4, 0.15], tau * np.array([1.0, 0.4, 0.15]))
    return x, base


@synth("pluck")
def _s_pluck(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    k = np.arange(1, 13)
    pos = _u(rng, (0.1, 0.3))
    amps = np.abs(np.sin(np.pi * k * pos)) / k
    freqs = f * k * np.sqrt(1 + 1e-4 * k ** 2)
    x = _partials(n, sr, freqs, amps, tau / (1 + 0.35 * (k - 1)), rng.uniform(0, 2 * np.pi, 12))
    return x, f


_DRAWBARS = [1.0, 0.6, 0.4, 0.3, 0.2, 0.12, 0.08, 0.05]


@synth("organ")
def _s_organ(rng, n, sr, p):
    f = _lu(rng, p["f"])
    third = 1.25 if rng.random() < 0.6 else 1.2
    x = np.zeros(n, F32)
    for r in (1.0, third, 1.5):
        fr = f * r * (1 + rng.uniform(-0.002, 0.002))
        x += _harmonic(_frac(_cycles_const(fr, n, sr) + rng.random()), _DRAWBARS, fr, sr)
    trem = 1 + 0.08 * np.sin(TWO_PI * F32(_u(rng, (5.5, 7.0))) * _time(n, sr).astype(F32))
    return _ramp(x * trem, sr, 0.03, 0.08), f


@synth("bowed")
def _s_bowed(rng, n, sr, p):
    f = _lu(rng, p["f"])
    t = _time(n, sr)
    depth, rate = _u(rng, (0.003, 0.008)), _u(rng, (5.0, 6.5))
    vib = depth * np.sin(2 * np.pi * rate * t) * np.minimum(t / 0.3, 1)
    k = np.arange(1, 41)
    body = 0.25 + _peak(k * f, 450, 300) + 0.8 * _peak(k * f, 3000, 1500)
    x = _harmonic(_cycles(f * (1 + vib), sr), body / k, f * 1.01, sr)
    bow = _colored(rng, n, sr, _bp(2000, None, 1))
    return _ramp(x + 0.05 * _rms(x) * bow, sr, _u(rng, (0.08, 0.2)), 0.15), f


@synth("flute")
def _s_flute(rng, n, sr, p):
    f = _lu(rng, p["f"])
    t = _time(n, sr)
    vib = 0.004 * np.sin(2 * np.pi * _u(rng, (4.5, 5.5)) * t) * np.minimum(t / 0.25, 1)
    x = _harmonic(_cycles(f * (1 + vib), sr), [1, 0.3, 0.1, 0.04], f * 1.01, sr)
    breath = _colored(rng, n, sr, _bp(f, 6 * f, 2))
    return _ramp(x + 0.06 * breath, sr, _u(rng, (0.05, 0.09)), 0.08), f


@synth("marimba")
def _s_marimba(rng, n, sr, p):
    f, tau = _lu(rng, p["f"]), _u(rng, p["tau"])
    x = _partials(n, sr, f * np.array([1.0, 3.93, 9.2]), [1.0, 0.25, 0.06],
                  [tau, 0.06, 0.02])
    return _add(x, _burst(rng, n, sr, 0.002), 0.1), f


# Animal and human voices ---------------------------------------------------------------


@synth("bird")
def _s_bird(rng, n, sr, p):
    fs = _lu(rng, p["f"])
    fe = fs * (_u(rng, (0.5, 0.8)) if rng.random() < 0.7 else _u(rng, (1.2, 1.5)))
    fe = min(fe, 0.45 * sr)
    T = _u(rng, (0.04, 0.12))
    times = _pattern(n / sr, max(_u(rng, p["period"]), T + 0.03), T, 0.2, rng)
    m = len(times)
    L = int(T * sr)
    t = (np.arange(L) / sr)[None, :]
    jit = rng.uniform(0.9, 1.1, m)[:, None]
    k = fe / fs
    cyc = _frac(jit * fs * T / math.log(k) * (np.power(k, t / T) - 1.0))
    env = (np.sin(np.pi * t / T) ** 2).astype(F32)
    g = env * (_sin(cyc) + 0.1 * _sin(_frac(2 * cyc)))
    return _place(n, np.round(times * sr), g), math.sqrt(fs * fe)


@synth("cuckoo")
def _s_cuckoo(rng, n, sr, p):
    f1 = _lu(rng, p["f"])
    f2 = f1 * _u(rng, (0.78, 0.84))
    note, gap = _u(rng, (0.12, 0.2)), _u(rng, (0.05, 0.12))
    calls = _pattern(n / sr, _u(rng, p["period"]), 2 * note + gap, 0.05, rng)
    L = int(note * sr)
    t = (np.arange(L) / sr)[None, :]
    freqs = np.tile([f1, f2], len(calls))[:, None]
    cyc = _frac(freqs * (t - 0.015 * t * t / note))
    g = _sin(cyc) + 0.05 * _sin(_frac(2 * cyc))
    g *= (np.sin(np.pi * t / note) ** 0.5).astype(F32)
    starts = np.stack([calls, calls + note + gap], 1).ravel()
    x = _place(n, np.round(starts * sr), g)
    return x[: int((calls[-1] + 2 * note + gap) * sr)], f1


@synth("crickets")
def _s_crickets(rng, n, sr, p):
    f = min(_lu(rng, p["f"]), 0.4 * sr)
    rate, period = _u(rng, p["rate"]), _u(rng, p["period"])
    pulses = int(rng.integers(3, 6))
    t = _time(n, sr)
    tc = np.mod(t + rng.uniform(0, period), period)
    idx = np.floor(tc * rate)
    fr = tc * rate - idx
    gate = ((idx < pulses) & (fr < 0.5)) * np.sin(2 * np.pi * fr) ** 2
    return _ramp(_sin(_cycles_const(f, n, sr)) * gate.astype(F32), sr, 0.01, 0.01), f


def _voice(cyc: np.ndarray, f0: float, formants, sr: int, tilt: float = 1.0) -> np.ndarray:
    """Voiced sound: harmonic wavetable with formant-shaped amplitudes (``f0`` Hz)."""
    n_harm = max(1, int(0.45 * sr / f0))
    return _harmonic(cyc, _formant_amps(f0, formants, n_harm, tilt), f0 * 1.1, sr)


@synth("bark")
def _s_bark(rng, n, sr, p):
    L_s = _u(rng, (0.1, 0.2))
    times = _pattern(n / sr, max(_u(rng, p["period"]), L_s + 0.08), L_s, 0.1, rng)
    f0 = _lu(rng, p["f"])
    t = _time(n, sr)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    tb = t - times[k]
    u = np.clip(tb / L_s, 0, 1)
    barkf = f0 * rng.uniform(0.9, 1.1, len(times))[k]
    f = barkf * (0.8 + 0.4 * np.exp(-(((u - 0.25) / 0.3) ** 2)))
    a = 0.015
    env = (tb / a) * np.exp(1 - tb / a) * 0.5 + 0.5 * np.exp(-tb / 0.06)
    env *= (tb < L_s) * np.minimum(tb / 0.003, 1)
    env = env.astype(F32) * np.minimum(1.0, (L_s - tb) / 0.01).clip(0).astype(F32)
    x = _voice(_cycles(f, sr), f0, ((900, 500, 1.0), (1800, 800, 0.7), (3200, 1200, 0.3)), sr, 0.7)
    rough = _colored(rng, n, sr, _bp(500, min(4000, 0.45 * sr), 2))
    x = (x / max(_rms(x), 1e-6) + 0.3 * rough) * env
    return x[: int((times[-1] + L_s) * sr)], f0


@synth("meow")
def _s_meow(rng, n, sr, p):
    fp = _lu(rng, p["f"])
    u = (_time(n, sr) / (n / sr))
    w = (np.sin(np.pi * u) ** 1.5).astype(F32)
    f = fp * (0.65 + 0.35 * np.sin(np.pi * u) ** 0.7)
    cyc = _cycles(f, sr)
    bright = _voice(cyc, fp, ((900, 300, 1.0), (1600, 400, 0.8), (3000, 600, 0.3)), sr)
    dark = _voice(cyc, fp, ((400, 200, 1.0), (900, 300, 0.5), (2500, 600, 0.1)), sr)
    x = (w * bright / _rms(bright) + (1 - w) * dark / _rms(dark)) * (0.4 + 0.6 * w)
    return _ramp(x, sr, 0.06, 0.15), float(np.mean(f))


@synth("frog")
def _s_frog(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    L_s = _u(rng, (0.12, 0.3))
    times = _pattern(n / sr, max(_u(rng, p["period"]), L_s + 0.1), L_s, 0.1, rng)
    t = _time(n, sr)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    u = (t - times[k]) / L_s
    env = np.where((u >= 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 0.5, 0.0).astype(F32)
    am = ((0.5 + 0.5 * np.sin(2 * np.pi * _u(rng, (25, 60)) * t)) ** 3).astype(F32)
    fc = _u(rng, (500, 1200))
    x = _voice(_cycles_const(f0, n, sr), f0, ((fc, 400, 1.0), (2.2 * fc, 800, 0.3)), sr, 0.5)
    return (x * am * env)[: int((times[-1] + L_s) * sr)], f0


@synth("buzz")
def _s_buzz(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    f = f0 * (1 + 0.06 * _slow(rng, n, sr, 1.5, -1, 1))
    k = np.arange(1, 41)
    x = _harmonic(_cycles(f, sr), 1 / k, 1.07 * f0, sr)
    x *= 0.3 + 0.7 * _slow(rng, n, sr, _u(rng, (0.3, 1.0)), 0.2, 1.0) ** 2
    return _ramp(x, sr, 0.1, 0.1), f0


# Vowel formants (F1, F2, F3) in Hz of an adult voice.
_VOWELS = np.array([(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
                    (570, 840, 2410), (660, 1720, 2410), (490, 1350, 1690)], dtype=np.float64)


def _formants_of(vowel, scale: float):
    f1, f2, f3 = vowel * scale
    return ((f1, 90, 1.0), (f2, 120, 0.6), (f3, 200, 0.3))


@synth("speech")
def _s_speech(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    scale = 1.0 if f0 < 160 else 1.15
    dur = n / sr
    t = _time(n, sr)
    f = f0 * (1.1 - 0.2 * t / dur) * (1 + 0.08 * _slow(rng, n, sr, 3.0, -1, 1))
    cyc = _cycles(f, sr)
    period = 1 / _u(rng, p["rate"])
    x = np.zeros(n, F32)
    starts = np.arange(0.0, dur - 0.1, period)
    for s in starts:
        if rng.random() < 0.15 and s > 0:  # a pause between words
            continue
        a, L = int(s * sr), int(min(period * _u(rng, (0.6, 0.9)), dur - s) * sr)
        if L < 16:
            continue
        vowel = _VOWELS[rng.integers(0, len(_VOWELS))]
        seg = _voice(cyc[a:a + L], f0, _formants_of(vowel, scale), sr, 1.2)
        x[a:a + L] += seg * (np.sin(np.pi * (np.arange(L) + 0.5) / L) ** 0.8).astype(F32)
        if rng.random() < 0.4:  # a fricative before the vowel
            c = min(L, int(0.05 * sr))
            hiss = _colored(rng, c, sr, _bp(min(2500, 0.3 * sr), None, 2))
            x[a:a + c] += 0.3 * _rms(seg) * hiss * _hann(c)
    return _ramp(x, sr, 0.01, 0.02), f0


_SEMITONES = np.array([0, 2, 4, 5, 7, 9])


def _melody(rng, n: int, sr: int, f0: float, notes: int, glide: float = 0.04) -> np.ndarray:
    """Instantaneous frequency (Hz, ``(n,)``) of a short tune around ``f0`` with glides."""
    steps = _SEMITONES[rng.integers(0, len(_SEMITONES), notes)]
    freqs = f0 * 2.0 ** (steps / 12.0)
    i = np.minimum((np.arange(n) * notes) // n, notes - 1)
    f = freqs[i]
    w = max(1, int(glide * sr))
    c = np.cumsum(np.concatenate([np.full(w, f[0]), f, np.full(w, f[-1])]))  # moving average
    return (c[2 * w:] - c[:-2 * w])[:n] / (2 * w)


@synth("hum")
def _s_hum(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    f = _melody(rng, n, sr, f0, int(rng.integers(3, 7)))
    x = _voice(_cycles(f, sr), f0, ((250, 100, 1.0), (2500, 400, 0.05)), sr, 2.0)
    return _ramp(x, sr, 0.08, 0.12), float(np.median(f))


@synth("whistle")
def _s_whistle(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    t = _time(n, sr)
    f = _melody(rng, n, sr, f0, int(rng.integers(3, 9)), 0.03)
    f = f * (1 + 0.01 * np.sin(2 * np.pi * _u(rng, (5, 6)) * t))
    x = _harmonic(_cycles(f, sr), [1.0, 0.05], 2 * f0, sr)
    breath = _colored(rng, n, sr, _bp(0.8 * f0, min(2.5 * f0, 0.45 * sr), 3))
    return _ramp(x + 0.03 * breath, sr, 0.04, 0.08), float(np.median(f))


@synth("laugh")
def _s_laugh(rng, n, sr, p):
    f0 = _lu(rng, p["f"])
    period = 1 / _u(rng, p["rate"])
    starts = np.arange(0.0, n / sr - 0.5 * period, period)
    formants = ((800, 150, 1.0), (1200, 200, 0.6), (2500, 300, 0.3))
    t = _time(n, sr)
    k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
    f = f0 * 0.96 ** k * (1 - 0.1 * np.clip((t - starts[k]) / period, 0, 1))
    x = _voice(_cycles(f, sr), f0, formants, sr, 1.0)
    breath = _colored(rng, n, sr, _bp(600, min(3000, 0.45 * sr), 2))
    x = x / max(_rms(x), 1e-6) + 0.35 * breath
    env = _env_train(n, sr, starts + 0.03, np.linspace(1.0, 0.6, len(starts)), 0.06, 0.01)
    h = _env_train(n, sr, starts, np.full(len(starts), 0.4), 0.01, 0.005)
    asp = _colored(rng, n, sr, _bp(1000, None, 1))
    return _ramp(x * env + asp * h, sr, 0.001, 0.05), f0

