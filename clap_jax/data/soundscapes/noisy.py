"""Noise-driven and mechanical synthesisers: drums, clicks, noise, nature, machines, applause,
and the backgrounds.

    events:      (rng, n samples, sample_rate, params) -> (signal float32 (<= n,), pitch Hz or None)
    backgrounds: (rng, n samples, sample_rate) -> signal float32 (n,)

Built from FFT-shaped noise (``_colored``), impulse trains and grains overlap-added
(``_env_train``, ``_ring_grains``, ``_place``); the machines (engine, hum, drill, horn) add
harmonic wavetables to their noise.  Registered in
:data:`~clap_jax.data.soundscapes.registry.SYNTHS`; pitched sources are in
:mod:`~clap_jax.data.soundscapes.tonal`.
"""

from __future__ import annotations

import numpy as np

from clap_jax.data.soundscapes.primitives import (
    F32, TWO_PI, _add, _bp, _burst, _colored, _cycles, _cycles_const, _decay_env, _env_train,
    _filter, _frac, _harmonic, _lu, _normalise, _partials, _pattern, _peak, _place, _poisson_env,
    _power, _ramp, _ring_grains, _rms, _sin, _slow, _time, _u, _white)
from clap_jax.data.soundscapes.registry import synth

# Drums, clicks, noise, nature and machines ----------------------------------------------


@synth("kick")
def _s_kick(rng, n, sr, p):
    f_hi, f_lo, tau = _u(rng, p["f_hi"]), _u(rng, p["f_lo"]), _u(rng, p["tau"])
    t = _time(n, sr)
    f = f_lo + (f_hi - f_lo) * np.exp(-t / _u(rng, (0.02, 0.04)))
    x = _sin(_cycles(f, sr)) * _decay_env(n, sr, [tau], 0.001)[0]
    return _add(x, _burst(rng, n, sr, 0.001), 0.3), f_lo


@synth("snare")
def _s_snare(rng, n, sr, p):
    f, tau = _u(rng, p["f"]), _u(rng, p["tau"])
    noise = _colored(rng, n, sr, _bp(800, min(9000, 0.45 * sr), 2)) * _decay_env(n, sr, [tau])[0]
    tone = _partials(n, sr, [f, 1.6 * f], [1.0, 0.5], [0.05, 0.03])
    return 0.7 * noise + tone, None


@synth("clap")
def _s_clap(rng, n, sr, p):
    lo = _u(rng, p["lo"])
    k = int(rng.integers(3, 5))
    times = np.cumsum(np.concatenate([[0.0], rng.uniform(0.006, 0.012, k - 1)]))
    env = _env_train(n, sr, times, np.linspace(1.0, 0.7, k), 0.003)
    env += _env_train(n, sr, times[-1:], [0.7], _u(rng, p["tail"]))
    return _colored(rng, n, sr, _bp(lo, lo * _u(rng, (3.0, 5.0)), 2)) * env, None


@synth("hihat")
def _s_hihat(rng, n, sr, p):
    dur = n / sr
    times = _pattern(dur, _u(rng, p["period"]), 0.05, 0.0, rng)
    m = len(times)
    taus = np.where(rng.random(m) < 0.15, 0.15, rng.uniform(0.02, 0.05, m))
    amps = np.where(np.arange(m) % 2 == 0, 1.0, 0.6) * rng.uniform(0.8, 1.0, m)
    env = _env_train(n, sr, times, amps, taus)
    return _colored(rng, n, sr, _bp(min(6500.0, 0.35 * sr), None, 4)) * env, None


@synth("clock")
def _s_clock(rng, n, sr, p):
    f = _lu(rng, p["f"])
    period = (0.5, 1.0)[int(rng.integers(0, 2))]
    times = _pattern(n / sr, period, 0.03, 0.0, rng)
    freqs = np.where(np.arange(len(times)) % 2 == 0, f, 0.75 * f)
    L = int(0.03 * sr)
    g = _ring_grains(rng, L, sr, freqs, np.full(len(times), _u(rng, (0.002, 0.004))), 0.6)
    return _place(n, np.round(times * sr), g), None


@synth("click")
def _s_click(rng, n, sr, p):
    g = _ring_grains(rng, n, sr, [_lu(rng, p["f"])], [_u(rng, (0.001, 0.003))], 0.7)[0]
    return g, None


@synth("typing")
def _s_typing(rng, n, sr, p):
    gaps = p["gap"][0] + rng.exponential(0.5 * (p["gap"][1] - p["gap"][0]), int(n / sr / 0.05) + 2)
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    times = times[times < n / sr - 0.03]
    m = len(times)
    L = int(0.04 * sr)
    amps = rng.lognormal(0.0, 0.3, m).astype(F32)[:, None]
    hi = _ring_grains(rng, L, sr, rng.uniform(2000, 5000, m), rng.uniform(0.001, 0.002, m), 1.0)
    lo = _ring_grains(rng, L, sr, rng.uniform(300, 700, m), rng.uniform(0.006, 0.01, m), 0.2)
    return _place(n, np.round(times * sr), amps * (hi + 0.7 * lo)), None


@synth("knock")
def _s_knock(rng, n, sr, p):
    f = _u(rng, p["f"])
    times = _pattern(n / sr, _u(rng, p["period"]), 0.08, 0.1, rng)[:6]
    m = len(times)
    L = int(0.1 * sr)
    g = _ring_grains(rng, L, sr, f * rng.uniform(0.95, 1.05, m), np.full(m, 0.03), 0.8)
    g += 0.4 * _ring_grains(rng, L, sr, rng.uniform(500, 900, m), np.full(m, 0.01), 0.5)
    x = _place(n, np.round(times * sr), g)
    return x[: int((times[-1] + 0.1) * sr)], f


@synth("footsteps")
def _s_footsteps(rng, n, sr, p):
    times = _pattern(n / sr, _u(rng, p["period"]), 0.12, 0.05, rng)
    m = len(times)
    amps = np.where(np.arange(m) % 2 == 0, 1.0, 0.75) * rng.uniform(0.8, 1.0, m)
    thud = _colored(rng, n, sr, _bp(60, 600, 2)) * _env_train(n, sr, times, amps, 0.035, 0.004)
    heel = _ring_grains(rng, int(0.03 * sr), sr, rng.uniform(1000, 3000, m), np.full(m, 0.004), 1.0)
    return thud + 0.15 * _place(n, np.round((times + 0.01) * sr), heel), None


@synth("noise")
def _s_noise(rng, n, sr, p):
    e = p["exponent"]
    x = _colored(rng, n, sr, None if e == 0 else _power(e))
    return _ramp(x, sr, 0.02, 0.02), None


@synth("static")
def _s_static(rng, n, sr, p):
    hiss = _colored(rng, n, sr, _bp(300, min(3400, 0.45 * sr), 2))
    hiss *= 0.6 + 0.4 * _slow(rng, n, sr, 12)
    crackle = _white(rng, n) * _poisson_env(rng, n, sr, _u(rng, (30, 80)), 0.001, 1.0)
    tone_f = _u(rng, (1000, 3000)) * (1 + 0.05 * _slow(rng, n, sr, 1.0, -1, 1))
    whistle = 0.15 * _sin(_cycles(tone_f, sr))
    return _ramp(hiss + 0.5 * crackle + whistle, sr, 0.02, 0.02), None


@synth("rain")
def _s_rain(rng, n, sr, p):
    hiss = _colored(rng, n, sr, lambda f: _bp(400, None, 1)(f) * _power(-0.3, 400)(f))
    drops = _poisson_env(rng, n, sr, _u(rng, p["rate"]), _u(rng, (0.002, 0.005)), 0.8)
    carrier = _colored(rng, n, sr, _bp(1500, min(8000, 0.45 * sr), 1))
    x = (0.5 * hiss + _normalise(drops) * carrier) * (0.8 + 0.2 * _slow(rng, n, sr, 0.5))
    return _ramp(x, sr, 0.2, 0.3), None


@synth("wind")
def _s_wind(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    x = 0.3 * _colored(rng, n, sr, _bp(None, 150, 2))
    for _ in range(3):
        fc = _lu(rng, p["f"])
        band = _colored(rng, n, sr, lambda f, fc=fc: _peak(f, fc, 0.6 * fc))
        x += band * _slow(rng, n, sr, rate, 0.1, 1.0) ** 2
    return _ramp(x, sr, 0.3, 0.4), None


@synth("waves")
def _s_waves(rng, n, sr, p):
    t = _time(n, sr)
    period, phase = _u(rng, p["period"]), rng.uniform(0, 2 * np.pi)
    swell = (0.5 - 0.5 * np.cos(2 * np.pi * t / period + phase)).astype(F32)
    wash = _colored(rng, n, sr, _bp(None, _u(rng, (600, 2000)), 1)) * (0.15 + swell ** 2)
    crest = _colored(rng, n, sr, _bp(1500, None, 2)) * swell ** 4
    return _ramp(wash + 0.5 * crest, sr, 0.3, 0.4), None


@synth("thunder")
def _s_thunder(rng, n, sr, p):
    t = _time(n, sr).astype(F32)
    t0 = _u(rng, (0.0, 0.2))
    crack = _colored(rng, n, sr, _bp(200, 5000, 1)) * _env_train(n, sr, [t0], [1.0], 0.03)
    env = (1 - np.exp(-t / 0.15)) * np.exp(-t / _u(rng, p["tau"]))
    env *= _slow(rng, n, sr, 3.0, 0.3, 1.0)
    rumble = _colored(rng, n, sr, lambda f: _power(-1.0)(f) * _bp(20, 300, 2)(f)) * env
    return _ramp(0.7 * crack + rumble, sr, 0.001, 0.3), None


@synth("bubbles")
def _s_bubbles(rng, n, sr, p):
    m = max(1, int(rng.poisson(_u(rng, p["rate"]) * n / sr)))
    L = min(n, int(0.06 * sr))
    f0 = np.exp(rng.uniform(*np.log(p["f"]), m))[:, None]
    xi = rng.uniform(10, 30, m)[:, None]
    t = (np.arange(L) / sr)[None, :]
    g = np.sin(TWO_PI * _frac(f0 * (t + 0.5 * xi * t * t)).astype(F32))
    g *= _decay_env(L, sr, rng.uniform(0.005, 0.02, m), 0.001)
    g *= rng.lognormal(0, 0.5, m).astype(F32)[:, None]
    x = _place(n, rng.integers(0, max(1, n - L), m), g)
    flow = _colored(rng, n, sr, _bp(None, 800, 1))
    return _ramp(x + 0.1 * _rms(x) * flow, sr, 0.05, 0.1), None


@synth("fire")
def _s_fire(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    pops = _white(rng, n) * _poisson_env(rng, n, sr, rate, _u(rng, (0.0005, 0.0015)), 1.0)
    pops = _filter(pops, sr, _bp(500, None, 1))
    bed = _colored(rng, n, sr, _bp(None, 800, 1)) * (0.5 + 0.5 * _slow(rng, n, sr, 2.0))
    return _ramp(_normalise(pops) + 0.3 * bed, sr, 0.1, 0.2), None


@synth("engine")
def _s_engine(rng, n, sr, p):
    f = _lu(rng, p["f"])
    ft = f * (1 + 0.01 * _slow(rng, n, sr, 2.0, -1, 1))
    k = np.arange(1, 61)
    amps = rng.uniform(0.6, 1.0, 60) / k ** 0.8
    x = _harmonic(_cycles(ft, sr), amps, 1.01 * f, sr)
    x += 0.3 * _harmonic(_cycles(0.5 * ft, sr), amps[:20], 0.51 * f, sr)
    x += 0.15 * _rms(x) * _colored(rng, n, sr, _bp(None, 500, 2))
    return _ramp(x, sr, 0.1, 0.15), f


@synth("mains")
def _s_mains(rng, n, sr, p):
    f = (50.0, 60.0)[int(rng.integers(0, 2))] * (1 + rng.uniform(-0.002, 0.002))
    k = np.arange(1, 31)
    amps = np.where(k % 2 == 1, 0.4, 0.15) / k
    amps[:4] = [0.4, 1.0, 0.35, 0.3]
    return _ramp(_harmonic(_cycles_const(f, n, sr), amps, f, sr), sr, 0.05, 0.05), f


@synth("drill")
def _s_drill(rng, n, sr, p):
    f = _lu(rng, p["f"])
    t = _time(n, sr)
    spin = 0.25 + 0.75 * (1 - np.exp(-t / _u(rng, (0.15, 0.4))))
    spin *= np.clip((t[-1] - t) / 0.15, 0.3, 1.0)  # spins down at the end
    k = np.arange(1, 41)
    amps = 1 / k + 0.8 * ((k >= 3) & (k <= 5))
    x = _harmonic(_cycles(f * spin, sr), amps, f, sr)
    noise = _colored(rng, n, sr, _bp(1000, min(5000, 0.45 * sr), 2))
    x += 0.15 * _rms(x) * noise * spin.astype(F32)
    return _ramp(x, sr, 0.01, 0.05), f


@synth("helicopter")
def _s_helicopter(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    times = np.arange(0.0, n / sr, 1 / rate) + rng.uniform(0, 1 / rate)
    slaps = _colored(rng, n, sr, _bp(None, 800, 2))
    slaps *= _env_train(n, sr, times, np.ones(len(times)), 0.02, 0.003)
    bed = _colored(rng, n, sr, _bp(None, 2000, 1))
    whine = _sin(_cycles_const(_u(rng, (1500, 3000)), n, sr))
    flyover = 0.6 + 0.4 * np.sin(np.pi * _time(n, sr) / (n / sr)).astype(F32)
    return _ramp((slaps + 0.2 * bed + 0.05 * whine) * flyover, sr, 0.3, 0.3), None


@synth("horn")
def _s_horn(rng, n, sr, p):
    f1 = _lu(rng, p["f"])
    k = np.arange(1, 31)
    x = (_harmonic(_cycles_const(f1, n, sr), 1 / k, f1, sr)
         + _harmonic(_cycles_const(1.26 * f1, n, sr), 1 / k, 1.26 * f1, sr))
    return _ramp(np.tanh(1.5 * x).astype(F32), sr, 0.01, 0.03), f1


@synth("jackhammer")
def _s_jackhammer(rng, n, sr, p):
    rate = _u(rng, p["rate"])
    times = np.arange(0.0, n / sr - 0.02, 1 / rate)
    m = len(times)
    thump = _colored(rng, n, sr, _bp(150, 1500, 2))
    thump *= _env_train(n, sr, times, rng.uniform(0.8, 1.0, m), 0.012)
    ring = _ring_grains(rng, int(0.02 * sr), sr, rng.uniform(1500, 3000, m), np.full(m, 0.003), 1.5)
    hiss = _colored(rng, n, sr, _bp(2000, None, 1))
    x = thump + 0.2 * _place(n, np.round(times * sr), ring) + 0.05 * hiss
    return _ramp(x, sr, 0.01, 0.05), None



@synth("applause")
def _s_applause(rng, n, sr, p):
    env = _poisson_env(rng, n, sr, _u(rng, p["rate"]), _u(rng, (0.004, 0.012)), 0.5)
    lo, hi = _u(rng, (600, 1000)), min(_u(rng, (3000, 6000)), 0.45 * sr)
    carrier = _colored(rng, n, sr, _bp(lo, hi, 2))
    return _ramp(_normalise(env) * carrier, sr, 0.3, 0.4), None


# Backgrounds ----------------------------------------------------------------------------


@synth("bg_room")
def _s_bg_room(rng, n, sr):
    return _colored(rng, n, sr, lambda f: _power(-0.5)(f) * _bp(None, 3000, 1)(f))


@synth("bg_traffic")
def _s_bg_traffic(rng, n, sr):
    x = _colored(rng, n, sr, _power(-1.0))
    x += _colored(rng, n, sr, _bp(50, 400, 2)) * _slow(rng, n, sr, _u(rng, (0.1, 0.3)), 0.2, 1.0)
    return x


@synth("bg_outdoors")
def _s_bg_outdoors(rng, n, sr):
    x = _colored(rng, n, sr, lambda f: _power(-0.5)(f) * _bp(100, 6000, 1)(f))
    return x * _slow(rng, n, sr, 0.3, 0.6, 1.0)


@synth("bg_ventilation")
def _s_bg_ventilation(rng, n, sr):
    return _colored(rng, n, sr, lambda f: _bp(None, 1500, 1)(f) * (1 + 2 * _peak(f, 300, 200)))

