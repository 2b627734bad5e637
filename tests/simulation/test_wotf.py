"""Partially coherent optics: weak-object transfer functions against Abbe's sum, and their limits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from virtualfocus.simulation import wotf as W
from virtualfocus.simulation.optics import Optics, otf_band

SHAPE = (64, 64)


def _weak_object(seed: int, amp_abs: float = 0.01, amp_phase: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = gaussian_filter(rng.random(SHAPE), 1.5, mode="wrap")
    ph = gaussian_filter(rng.random(SHAPE), 1.5, mode="wrap")
    return (mu - mu.mean()) * amp_abs / mu.std() * 0.3 + 0.002, (ph - ph.mean()) * amp_phase / ph.std() * 0.3


@pytest.mark.parametrize("condenser_na", [0.0, 0.4, 0.9])
@pytest.mark.parametrize("z", [-0.8, 0.0, 0.5])
def test_weak_object_transfer_functions_agree_with_abbe(condenser_na: float, z: float) -> None:
    optics = Optics(condenser_na=condenser_na, spherical_waves=0.04, astigmatism_waves=0.02)
    mu, ph = _weak_object(1)
    ref = W.abbe_image(np.exp(-mu + 1j * ph), optics, z, 0.54)
    fast = W.weak_object_image(mu, ph, optics, z, 0.54)
    assert np.sqrt(np.mean((ref - fast) ** 2)) < 0.05 * ref.std()


def test_abbe_and_wotf_conserve_the_background() -> None:
    optics = Optics(condenser_na=0.6)
    flat = np.ones(SHAPE, complex)
    assert np.allclose(W.abbe_image(flat, optics, 0.7, 0.54), 1.0, atol=1e-9)
    t_abs, t_phase = W.transfer_functions(optics, 0.7, 0.54, SHAPE)
    assert t_abs[0, 0] == pytest.approx(1.0) and abs(t_phase[0, 0]) < 1e-6


def test_coherent_limit_is_the_pupil_phase() -> None:
    # condenser NA → 0: T_abs = cos θ, T_phase = 2 sin θ with θ the pupil phase (defocus), inside the aperture
    optics = Optics(condenser_na=0.0, spherical_waves=0.0, focal_shift_positive=1.0)
    z, lam = 0.6, 0.54
    t_abs, t_phase = W.transfer_functions(optics, z, lam, SHAPE)
    fy = np.fft.fftfreq(SHAPE[0], d=optics.pixel_um)[:, None]
    fx = np.fft.rfftfreq(SHAPE[1], d=optics.pixel_um)[None, :]
    p = W.pupil(optics, z, lam, fy, fx)
    inner = np.hypot(fy, fx) < 0.8 * optics.na / lam  # away from the (resampled) aperture edge
    assert np.abs(t_abs - np.cos(np.angle(p)))[inner].max() < 0.08
    assert np.abs(t_phase - 2 * np.sin(np.angle(p)))[inner].max() < 0.15
    assert np.abs(t_abs[np.hypot(fy, fx) > 1.05 * optics.na / lam]).max() < 1e-6


def test_incoherent_limit_is_the_pupil_autocorrelation_and_hides_phase() -> None:
    # condenser as wide as the objective: absorption sees the incoherent OTF, a thin phase object is invisible
    optics = Optics(condenser_na=1.25, spherical_waves=0.0, focal_shift_positive=1.0)
    z, lam, n = 0.5, 0.54, 128
    t_abs, t_phase = W.transfer_functions(optics, z, lam, (n, n))
    fy = np.fft.fftfreq(n, d=optics.pixel_um)[:, None]
    fx = np.fft.fftfreq(n, d=optics.pixel_um)[None, :]
    amp = np.fft.ifft2(W.pupil(optics, z, lam, fy, fx))
    otf = np.fft.rfft2(np.abs(amp) ** 2)
    otf = (otf / otf[0, 0]).real
    assert np.abs(t_abs - otf).max() < 0.03
    assert np.abs(t_phase).max() < 0.02


def test_phase_contrast_flips_sign_across_focus_and_vanishes_in_focus() -> None:
    optics = Optics(condenser_na=0.5, spherical_waves=0.0, focal_shift_positive=1.0)
    _, t0 = W.transfer_functions(optics, 0.0, 0.54, SHAPE)
    _, tp = W.transfer_functions(optics, 0.4, 0.54, SHAPE)
    _, tm = W.transfer_functions(optics, -0.4, 0.54, SHAPE)
    assert np.abs(t0).max() < 1e-3
    assert np.abs(tp).max() > 0.2 and np.allclose(tp, -tm, atol=1e-5)


def test_transfer_functions_vanish_beyond_the_partially_coherent_cutoff() -> None:
    optics = Optics(na=1.0, condenser_na=0.3, pixel_um=0.1)
    for lam in optics.wavelengths_um:
        t_abs, t_phase = W.transfer_functions(optics, 0.9, lam, SHAPE)
        rows_pos, rows_neg, cols = otf_band(optics, lam, SHAPE)
        outside = np.ones(t_abs.shape, bool)
        outside[:rows_pos, :cols] = False
        outside[SHAPE[0] - rows_neg :, :cols] = False
        assert not np.any(t_abs[outside]) and not np.any(t_phase[outside])
