"""Pupil-function PSF, transfer functions and camera noise of the simulator's optics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.simulation.optics import (
    Camera,
    Optics,
    absorbed_bands,
    add_camera_noise,
    canvas_len,
    layer_bands,
    motion_otf,
    otf,
    otf_band,
    psf,
    render_bands,
    render_layers,
    standard_normal_fast,
)

ABERRATION_FREE = Optics(spherical_waves=0.0, focal_shift_positive=1.0)


@pytest.mark.parametrize("z", [-1.6, -0.4, 0.0, 0.6, 1.4])
@pytest.mark.parametrize("wavelength", [0.46, 0.54, 0.61])
def test_psf_conserves_energy(z: float, wavelength: float) -> None:
    k = psf(Optics(), z, wavelength_um=wavelength, size=65)
    assert k.shape == (65, 65)
    assert k.min() >= -0.05 * k.max()  # a partially coherent point image rings slightly below zero
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


def test_default_optics_blur_sides_differ() -> None:
    # spherical aberration and the focal shift make the two sides of focus differ (thesis table 6.1)
    o = Optics()
    a, b = psf(o, -1.2).max(), psf(o, 1.2).max()
    assert abs(a - b) > 0.2 * max(a, b)


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


# ------------------------------------------------------------------------------------- fast rendering paths
def _reference_render(
    layers: np.ndarray, depths: np.ndarray, offsets: np.ndarray, optics: Optics, extra=None
):
    """Straightforward float64 layered rendering: full complex OTFs, numpy FFTs (the original algorithm)."""
    from virtualfocus.simulation.optics import _psf_full

    h, w = layers.shape[1:3]
    spectra = np.fft.rfft2(np.moveaxis(layers.astype(np.float64), -1, 1), axes=(-2, -1))
    out = np.zeros((offsets.size, h, w, 3))
    for c in range(3):
        lam, shift = optics.wavelengths_um[c], optics.chromatic_shift_um[c]
        for i, z in enumerate(offsets):
            acc = np.zeros(spectra.shape[-2:], complex)
            for k, d in enumerate(depths):
                zq = round((z - d - shift) / 0.01) * 0.01
                acc += np.fft.rfft2(_psf_full(optics, zq, lam, (h, w))) * spectra[k, c]
            if extra is not None:
                acc *= extra
            out[i, ..., c] = np.fft.irfft2(acc, s=(h, w))
    return out


@pytest.mark.parametrize("shape", [(64, 64), (45, 50), (50, 45)])
@pytest.mark.parametrize("pixel_um", [0.1, 0.3], ids=["band-limited", "full-band"])
def test_render_layers_matches_reference(shape: tuple[int, int], pixel_um: float) -> None:
    rng = np.random.default_rng(4)
    optics = Optics(pixel_um=pixel_um)
    layers = (rng.random((2, *shape, 3)) * 0.4).astype(np.float32)
    depths = np.array([0.0, 0.35])
    offsets = np.array([-0.8, 0.0, 0.6])
    ref = _reference_render(layers, depths, offsets, optics)
    spectra = np.fft.rfft2(np.moveaxis(layers, -1, 1), axes=(-2, -1)).astype(np.complex64)
    got = render_layers(spectra, depths, offsets, optics, shape)
    assert np.abs(got - ref).max() < 2e-6
    # the OpenCV forward path gives the same band spectra
    a, b = absorbed_bands(layers, optics), layer_bands(spectra, optics, shape)
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape and np.abs(u - v).max() < 1e-5 * np.abs(v).max()
    crop = render_bands(a, depths, offsets, optics, shape, crop=(shape[0] - 3, shape[1] - 5))
    assert np.abs(crop - ref[:, : shape[0] - 3, : shape[1] - 5]).max() < 2e-6


def test_render_layers_extra_transfer_functions() -> None:
    rng = np.random.default_rng(5)
    shape = (48, 40)
    layers = (rng.random((1, *shape, 3)) * 0.4).astype(np.float32)
    spectra = np.fft.rfft2(np.moveaxis(layers, -1, 1), axes=(-2, -1)).astype(np.complex64)
    depths, offsets = np.array([0.1]), np.array([-0.4, 0.5])
    motion = motion_otf(5.0, 30.0, shape)  # real (a box blur is symmetric)
    ref = _reference_render(layers, depths, offsets, Optics(), motion)
    assert (
        np.abs(render_layers(spectra, depths, offsets, Optics(), shape, extra_otf=motion) - ref).max() < 2e-6
    )
    # a complex transfer function (a 3-pixel shift) goes through the general path
    fx = np.fft.rfftfreq(shape[1])[None, :]
    shift = np.broadcast_to(np.exp(-2j * np.pi * 3 * fx), (shape[0], shape[1] // 2 + 1)).astype(np.complex64)
    ref = _reference_render(layers, depths, offsets, Optics(), shift)
    assert (
        np.abs(render_layers(spectra, depths, offsets, Optics(), shape, extra_otf=shift) - ref).max() < 2e-6
    )


def test_otf_is_real_and_zero_outside_its_pass_band() -> None:
    from virtualfocus.simulation.optics import _psf_full

    o = Optics()
    shape = (72, 90)
    for c, lam in enumerate(o.wavelengths_um):
        full = np.fft.rfft2(_psf_full(o, 0.7, lam, shape))
        assert np.abs(full.imag).max() < 1e-5  # centro-symmetric response (float32 rounding only)
        rows_pos, rows_neg, cols = otf_band(o, lam, shape)
        assert rows_pos + rows_neg < shape[0] and cols < shape[1] // 2 + 1
        outside = np.ones(full.shape, bool)
        outside[:rows_pos, :cols] = False
        outside[shape[0] - rows_neg :, :cols] = False
        assert np.abs(full[outside]).max() < 1e-5, c  # resampling leaks ≤ 1e-5 one cell past the cut-off
        t = otf(o, 0.7, lam, shape)
        assert t.dtype == np.float32 and np.allclose(t, full.real, atol=1e-6)


def test_canvas_len_is_even_and_13_smooth() -> None:
    assert [canvas_len(n) for n in (16, 96, 128, 401, 449)] == [16, 96, 128, 416, 450]
    for n in range(2, 300):
        m = canvas_len(n)
        k = m
        for p in (2, 3, 5, 7, 11, 13):
            while k % p == 0:
                k //= p
        assert m >= n and m % 2 == 0 and k == 1


# ------------------------------------------------------------------------------------------ noise statistics
@pytest.mark.parametrize("electrons", [4.0, 60.0, 900.0], ids=["exact-poisson", "gaussian", "bright"])
def test_camera_noise_variance_matches_mean_in_electrons(electrons: float) -> None:
    # shot noise is Poisson(λ): variance = mean in electrons (exact draws below 20 e⁻, N(λ, λ) above)
    fw = 1000.0
    cam = Camera(full_well_e=fw, read_noise_e=0.0, bit_depth=16)  # 1 DN = 0.015 e⁻: quantisation negligible
    inten = np.full((5, 101, 103), electrons / fw, np.float32)
    e = add_camera_noise(inten, cam, np.random.default_rng(9)).astype(np.float64) * fw / 65535
    assert e.mean() == pytest.approx(electrons, rel=0.01)
    assert e.var() == pytest.approx(electrons, rel=0.03)
    if electrons < 20:
        return  # read noise below zero electrons is clipped by the camera; check the sum where it is not
    # with read noise the variances add
    cam = Camera(full_well_e=fw, read_noise_e=3.0, bit_depth=16)
    e = add_camera_noise(inten, cam, np.random.default_rng(10)).astype(np.float64) * fw / 65535
    assert e.var() == pytest.approx(electrons + 9.0, rel=0.03)


def test_camera_noise_mixed_dark_and_bright_pixels() -> None:
    fw = 1000.0
    cam = Camera(full_well_e=fw, read_noise_e=0.0, bit_depth=16)
    inten = np.empty((200, 300), np.float32)
    inten[:, :150] = 0.003  # 3 e⁻: exact Poisson
    inten[:, 150:] = 0.2  # 200 e⁻: Gaussian approximation
    e = add_camera_noise(inten, cam, np.random.default_rng(11)).astype(np.float64) * fw / 65535
    dark, bright = e[:, :150], e[:, 150:]
    assert dark.mean() == pytest.approx(3.0, rel=0.03) and dark.var() == pytest.approx(3.0, rel=0.06)
    assert np.abs(dark - np.round(dark)).max() < 0.01  # whole electrons (to a grey level)
    assert bright.mean() == pytest.approx(200.0, rel=0.01) and bright.var() == pytest.approx(200.0, rel=0.05)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_camera_noise_without_noise_is_rounding(bits: int) -> None:
    # an (almost) noiseless camera gives the rounded intensity in every pixel, across chunk boundaries
    cam = Camera(full_well_e=1e18, read_noise_e=0.0, bit_depth=bits)
    inten = np.random.default_rng(12).uniform(-0.05, 1.05, (3, 211, 317)).astype(np.float32)
    img = add_camera_noise(inten, cam, np.random.default_rng(0)).astype(np.int64)
    levels = (1 << bits) - 1
    expected = np.clip(np.rint(inten.astype(np.float64) * levels), 0, levels).astype(np.int64)
    if bits == 12:
        expected <<= 4
    assert np.abs(img - expected).max() <= (16 if bits == 12 else 1)
    assert np.mean(img == expected) > 0.99  # float32 arithmetic may round the other way at x.5


def test_camera_noise_is_deterministic_by_seed() -> None:
    inten = np.random.default_rng(1).random((2, 300, 301, 3)).astype(np.float32)
    cam = Camera(full_well_e=2e4)
    a = add_camera_noise(inten, cam, np.random.default_rng(5))
    b = add_camera_noise(inten, cam, np.random.default_rng(5))
    c = add_camera_noise(inten, cam, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
