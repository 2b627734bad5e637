"""Randomized imaging chains: ranges, determinism, the sidecar record and the semi-synthetic path."""

from __future__ import annotations

import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.metrics import focus_measure
from virtualfocus.simulation.optics import Optics
from virtualfocus.simulation.randomize import (
    OpticsSample,
    RandomOptics,
    blur_diameter_px,
    defocus_image,
    random_semisynthetic_stack,
    random_stack,
    sample_optics,
)


def _samples(n: int = 300) -> list[OpticsSample]:
    rng = np.random.default_rng(0)
    return [sample_optics(rng) for _ in range(n)]


def test_sampled_chains_stay_in_their_ranges_and_cover_them() -> None:
    r = RandomOptics()
    s = _samples()
    na = np.array([x.optics.na for x in s])
    px = np.array([x.optics.pixel_um for x in s])
    sigma = np.array([x.optics.sigma for x in s])
    assert na.min() >= r.na[0] and na.max() <= r.na[1]
    assert px.min() >= r.pixel_um[0] and px.max() <= r.pixel_um[1] and px.max() / px.min() > 4
    assert sigma.min() >= r.sigma[0] - 1e-6 and sigma.max() <= r.sigma[1] + 1e-6
    for x in s:  # dry objectives below the oil threshold, oil above
        assert x.optics.immersion_index == (1.515 if x.optics.na > r.oil_above else 1.0)
        assert abs(x.optics.spherical_waves) <= r.spherical_waves[1]
        assert abs(x.optics.astigmatism_waves) <= r.astigmatism_waves[1]
        assert x.camera.bit_depth in r.bit_depths
        assert x.jpeg_quality is None or (x.camera.bit_depth == 8 and r.jpeg_quality[0] <= x.jpeg_quality)
        assert abs(x.focus_offset_um) <= r.focus_jitter * x.step_um + 1e-9
        # the outermost plane blurs by the drawn number of pixels, whatever the optics
        assert blur_diameter_px(x.optics, x.offsets_um[-1]) == pytest.approx(x.blur_px, rel=0.01)
    assert {np.sign(x.optics.spherical_waves) for x in s} >= {-1.0, 1.0}
    assert 0.05 < np.mean([x.gray for x in s]) < 0.3
    assert any(x.jpeg_quality for x in s)
    fw = np.array([x.camera.full_well_e for x in s])
    assert fw.min() >= r.full_well_e[0] and fw.max() <= r.full_well_e[1] and fw.max() / fw.min() > 50


def test_sampling_is_seeded_and_round_trips_to_json() -> None:
    a = sample_optics(np.random.default_rng(7))
    b = sample_optics(np.random.default_rng(7))
    assert a == b and a != sample_optics(np.random.default_rng(8))
    d = a.to_dict()
    assert Optics.from_dict(d["optics"]) == a.optics
    import json

    json.dumps(d)  # plain JSON for the sidecar


def _image(size: int = 96) -> np.ndarray:
    """A project-made "real" image: dark discs with texture on a bright background, uint8 RGB."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 230.0)
    for cy, cx in rng.uniform(10, size - 10, (6, 2)):
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < 80
        img[m] = (200, 120, 140)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_defocus_image_blurs_away_from_focus_and_keeps_the_contract() -> None:
    sample = sample_optics(np.random.default_rng(2), RandomOptics(gray_probability=0.0, jpeg_probability=0.0))
    img = _image()
    planes = defocus_image(img, sample, sample.offsets_um[[0, 8, 16]], rng=np.random.default_rng(0))
    assert planes.shape == (3, *img.shape) and planes.dtype == sample.camera.dtype
    f = [focus_measure(p) for p in planes]
    assert f[1] > f[0] and f[1] > f[2]
    again = defocus_image(img, sample, sample.offsets_um[[0, 8, 16]], rng=np.random.default_rng(0))
    assert np.array_equal(planes, again)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_defocus_image_accepts_common_image_types(dtype: type) -> None:
    img = _image(64).astype(np.float32) / 255
    src = (img * (255 if dtype == np.uint8 else 65535)).astype(dtype) if dtype != np.float32 else img
    sample = sample_optics(np.random.default_rng(4))
    out = defocus_image(src, sample, [0.0], rng=np.random.default_rng(0))
    assert out.shape == (1, 64, 64, 3)
    with pytest.raises(InputError, match="expected"):
        defocus_image(np.zeros((8, 8, 4)), sample, [0.0], rng=np.random.default_rng(0))


def test_gray_camera_and_jpeg() -> None:
    r = RandomOptics(gray_probability=1.0, jpeg_probability=1.0, bit_depths=(8,))
    sample = sample_optics(np.random.default_rng(5), r)
    assert sample.gray and sample.jpeg_quality is not None
    out = defocus_image(_image(64), sample, [0.0], rng=np.random.default_rng(0))
    assert out.dtype == np.uint8
    assert np.abs(out[..., 0].astype(int) - out[..., 2].astype(int)).max() <= 2  # gray (JPEG chroma rounding)


def test_random_stack_records_its_chain() -> None:
    st = random_stack(3, size=64)
    assert st.planes.shape[:3] == (17, 64, 64)
    im = st.meta["imaging"]
    assert Optics.from_dict(im["optics"]) == Optics.from_dict(st.meta["optics"])
    assert im["step_um"] > 0 and st.offsets_um[st.sharp_index] == 0
    assert np.allclose(np.diff(st.offsets_um), im["step_um"], atol=1e-5)


def test_random_semisynthetic_stack_from_a_project_image() -> None:
    img = _image(200)
    st = random_semisynthetic_stack(img, 1, size=64, source_pixel_um=0.2, n_planes=7)
    assert st.planes.shape[:3] == (7, 64, 64)
    assert st.meta["source"] == "semisynthetic-random" and 0.1 <= st.meta["pixel_um"] <= 0.2 * 200 / 64
    f = [focus_measure(p) for p in st.planes]
    assert int(np.argmax(f)) == st.sharp_index
    with pytest.raises(InputError, match="cannot cover"):
        random_semisynthetic_stack(_image(40), 1, size=256, source_pixel_um=0.2)


def test_semisynthetic_draws_include_oversampled_fields_within_the_limit() -> None:
    """Some stacks magnify the source (soft in focus at the pixel scale), never beyond ``max_upsampling``."""
    img = _image(200)
    px = [random_semisynthetic_stack(img, s, size=32, source_pixel_um=0.2, n_planes=3).meta["pixel_um"]
          for s in range(12)]
    assert min(px) < 0.2 < max(px) and min(px) >= 0.1
    none = RandomOptics(max_upsampling=1.0)
    assert all(random_semisynthetic_stack(img, s, size=32, source_pixel_um=0.2, n_planes=3, ranges=none)
               .meta["pixel_um"] >= 0.2 for s in range(6))


def test_simulate_cli_randomize_writes_the_chain_to_the_sidecar(tmp_path) -> None:
    from virtualfocus.simulation.simulate import main
    from virtualfocus.zstacks.stack import read_stack

    assert (
        main(["--out", str(tmp_path), "--stacks", "1", "--size", "48", "--workers", "1", "--randomize"]) == 0
    )
    st = read_stack(tmp_path / "rand-000000.tif")
    assert st.meta["imaging"]["optics"]["condenser_na"] > 0 and st.planes.shape[1:3] == (48, 48)
