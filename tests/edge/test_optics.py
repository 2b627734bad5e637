"""Pupil-function PSF, transfer functions and camera noise of the simulator's optics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.optics import (
    Camera,
    Optics,
    add_camera_noise,
    motion_otf,
    otf,
    psf,
    render_layers,
    standard_normal_fast,
)

ABERRATION_FREE = Optics(spherical_waves=0.0, focal_shift_positive=1.0)


@pytest.mark.parametrize("z", [-1.6, -0.4, 0.0, 0.6, 1.4])
@pytest.mark.parametrize("wavelength", [0.46, 0.54, 0.61])
def test_psf_conserves_energy(z: float, wavelength: float) -> None:
    k = psf(Optics(), z, wavelength_um=wavelength, size=65)
    assert k.shape == (65, 65)
    assert k.min() >= 0
    assert k.sum() == pytest.approx(1.0, abs=1e-9)


def test_full_grid_otf_has_unit_dc_gain() -> None:
    # the transfer function on the canvas grid must keep the mean intensity: OTF(0) = 1
    for z in (-1.0, 0.0, 1.2):
        t = otf(Optics(), z, 0.54, (64, 96))
        assert t.shape == (64, 49)
        assert abs(complex(t[0, 0]) - 1.0) < 1e-5


def test_psf_spreads_with_defocus() -> None:
    peaks = [psf(Optics(), z).max() for z in (0.0, 0.4, 0.8, 1.6)]
    assert all(a > b for a, b in itertools.pairwise(peaks))


def test_psf_symmetric_without_aberration() -> None:
    for z in (0.4, 1.0, 1.6):
        a, b = psf(ABERRATION_FREE, z), psf(ABERRATION_FREE, -z)
        assert np.abs(a - b).sum() < 1e-6


@pytest.mark.parametrize(
    "optics",
    [
        Optics(spherical_waves=0.15, focal_shift_positive=1.0),
        Optics(spherical_waves=0.0, focal_shift_positive=0.8),
    ],
    ids=["spherical", "focal-shift"],
)
def test_psf_asymmetric_with_aberration(optics: Optics) -> None:
    a, b = psf(optics, 1.0), psf(optics, -1.0)
    assert np.abs(a - b).sum() > 0.05


def test_default_optics_blur_negative_side_faster() -> None:
    # thesis table 6.1: moving in the negative direction degrades the image faster
    o = Optics()
    assert psf(o, -1.2).max() < psf(o, 1.2).max()


def test_optics_validation_names_the_field() -> None:
    with pytest.raises(InputError, match="na"):
        Optics(na=1.6)
    with pytest.raises(InputError, match="pixel_um"):
        Optics(pixel_um=0)
    with pytest.raises(InputError, match="defocus_um"):
        psf(Optics(), float("nan"))
    with pytest.raises(InputError, match="odd"):
        psf(Optics(), 0.0, size=64)


def test_optics_round_trips_through_dict() -> None:
    o = Optics(condenser_na=0.5, spherical_waves=-0.1)
    assert Optics.from_dict(o.to_dict()) == o
    with pytest.raises(InputError, match="unknown keys"):
        Optics.from_dict({**o.to_dict(), "magnification": 100})


def test_motion_otf_conserves_intensity_and_blurs_along_direction() -> None:
    m = motion_otf(8.0, 0.0, (32, 32))
    assert float(m[0, 0].real) == pytest.approx(1.0)
    # horizontal motion removes horizontal frequencies but keeps vertical ones
    assert abs(m[0, 4]) < 0.5 and abs(m[4, 0]) == pytest.approx(1.0)


def test_render_layers_conserves_mean() -> None:
    rng = np.random.default_rng(0)
    layer = rng.random((1, 64, 64, 3)).astype(np.float32) * 0.5
    spectra = np.fft.rfft2(np.moveaxis(layer, -1, 1), axes=(-2, -1)).astype(np.complex64)
    out = render_layers(spectra, np.array([0.0]), np.array([-1.0, 0.0, 1.0]), Optics(), (64, 64))
    assert out.shape == (3, 64, 64, 3)
    for plane in out:
        assert np.allclose(plane.mean(axis=(0, 1)), layer[0].mean(axis=(0, 1)), atol=1e-4)
    # blurring lowers the variance
    assert out[0].var() < layer[0].var() and out[2].var() < layer[0].var()


def test_standard_normal_fast_is_standard_normal() -> None:
    z = standard_normal_fast(np.random.default_rng(1), (200_001,))
    assert z.dtype == np.float32 and z.shape == (200_001,)
    assert abs(float(z.mean())) < 0.01
    assert float(z.std()) == pytest.approx(1.0, abs=0.01)
    assert float(np.mean(z.astype(np.float64) ** 4)) == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (12, np.uint16), (16, np.uint16)])
def test_camera_noise_level_and_dtype(bits: int, dtype: type) -> None:
    cam = Camera(full_well_e=20_000, read_noise_e=5.0, bit_depth=bits)
    flat = np.full((128, 128, 3), 0.5, np.float32)
    img = add_camera_noise(flat, cam, np.random.default_rng(2))
    assert img.dtype == dtype
    levels = (1 << bits) - 1
    vals = img.astype(np.float64) / (16 if bits == 12 else 1)
    if bits == 12:
        assert np.all(img % 16 == 0)  # MSB-aligned
    expected_sd = np.sqrt(0.5 * 20_000 + 25.0) * levels / 20_000
    assert vals.mean() == pytest.approx(0.5 * levels, rel=0.01)
    assert vals.std() == pytest.approx(np.sqrt(expected_sd**2 + 1 / 12), rel=0.1)


def test_camera_noise_is_exact_poisson_in_the_dark() -> None:
    cam = Camera(full_well_e=1000, read_noise_e=0.0, bit_depth=16)
    dark = np.full((64, 64), 0.005, np.float32)  # 5 e⁻ mean
    img = add_camera_noise(dark, cam, np.random.default_rng(3)).astype(np.float64) * 1000 / 65535
    assert img.mean() == pytest.approx(5.0, rel=0.05)
    assert img.var() == pytest.approx(5.0, rel=0.15)


def test_camera_noise_rejects_nan() -> None:
    bad = np.zeros((4, 4), np.float32)
    bad[1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        add_camera_noise(bad, Camera(), np.random.default_rng(0))
    with pytest.raises(InputError, match="bit_depth"):
        Camera(bit_depth=10)
