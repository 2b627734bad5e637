"""One random smear field: cells placed on the canvas at their depths, stained, illuminated and focused.

:func:`make_field` composes the cells of :mod:`.cells` into a :class:`~.field.SmearField` whose depths are in the
focus frame (offset 0 µm is the sharpest plane, found with Parseval's theorem on the noise-free layers).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .cells import _Canvas, _debris, _platelet, _rbc, _smooth_noise, _tint, _wbc
from .config import _WBC_FREQUENCY, SimConfig
from .field import SmearField
from .optics import Optics, best_focus_shift
from .transfer import _rfft2, canvas_len, otf

__all__ = ["focus_frame", "make_field"]


_DEPTH_QUANTUM_UM = 0.05


def _snap(v: float) -> float:
    return round(round(v / _DEPTH_QUANTUM_UM) * _DEPTH_QUANTUM_UM, 6)


def _parseval_focus(
    absorbed: np.ndarray, depths: np.ndarray, optics: Optics, *, span_um: float = 1.0
) -> float:
    """Offset (µm, 0.05 grid) maximising the noise-free green-channel focus measure, via Parseval.

    ``F`` of the rendered green channel is ``Σ_f W(f) |Σ_k OTF(o − d_k)(f) A_k(f)|²`` with ``W`` the power response
    of the thesis filters; evaluated on a coarse-to-fine grid of offsets, on a 2× subsampled canvas for speed.
    """
    p = absorbed.shape[1] // 2 * 2
    sub = np.stack(
        [cv2.resize(a[:p, :p, 1], (p // 2, p // 2), interpolation=cv2.INTER_AREA) for a in absorbed]
    )
    shape = (sub.shape[1], sub.shape[2])
    spec = _rfft2(sub)
    fy = np.fft.fftfreq(shape[0])[:, None] / 2  # in cycles per original pixel
    fx = np.fft.rfftfreq(shape[1])[None, :] / 2
    weight = (2 - 2 * np.cos(12 * np.pi * fx)) ** 2 + (2 - 2 * np.cos(12 * np.pi * fy)) ** 2
    weight_flat = weight.ravel()
    # the subsampled grid has pixel 2× larger: ask the OTF for the same physical frequencies
    sub_optics = Optics(**{**optics.to_dict(), "pixel_um": optics.pixel_um * 2})  # type: ignore[arg-type]
    lam = optics.wavelengths_um[1]
    shift = optics.chromatic_shift_um[1]

    # real transfer functions: accumulate the real and imaginary parts separately, in float32
    spec_re = np.ascontiguousarray(spec.real, dtype=np.float32)
    spec_im = np.ascontiguousarray(spec.imag, dtype=np.float32)
    re = np.empty(spec_re.shape[1:], np.float32)
    im = np.empty_like(re)

    def score(o: float) -> float:
        for k, d in enumerate(depths):
            t = otf(sub_optics, o - d - shift, lam, shape)
            if k == 0:
                cv2.multiply(t, spec_re[k], dst=re)
                cv2.multiply(t, spec_im[k], dst=im)
            else:
                cv2.accumulateProduct(t, spec_re[k], re)
                cv2.accumulateProduct(t, spec_im[k], im)
        power = cv2.magnitude(re, im)  # |acc|, then |acc|² weighted and summed (float64 accumulation)
        cv2.multiply(power, power, dst=power)
        return float(np.sum(weight_flat * power.ravel()))  # float64 products (no BLAS threads)

    coarse = np.round(np.arange(-span_um, span_um + 1e-9, 0.2), 6)
    best = float(coarse[int(np.argmax([score(o) for o in coarse]))])
    fine = np.round(best + np.arange(-0.15, 0.151, 0.05), 6)
    return float(fine[int(np.argmax([score(o) for o in fine]))])


def focus_frame(
    absorbed: np.ndarray,
    depths_um: np.ndarray,
    optics: Optics,
    *,
    rng: np.random.Generator,
    jitter_um: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Layer depths re-expressed so that focus offset 0 is the sharpest plane (noise-free green focus measure).

    Returns ``(depths − focus, focus)``; ``focus`` lies on the 0.05 µm grid and includes a uniform random
    sub-step error of ±``jitter_um`` (the autofocus never lands exactly on the best plane).
    """
    jitter = float(rng.uniform(-jitter_um, jitter_um)) if jitter_um > 0 else 0.0
    focus = _snap(best_focus_shift(optics) + jitter)
    focus += _snap(_parseval_focus(absorbed, np.asarray(depths_um) - focus, optics))
    return np.round(np.asarray(depths_um) - focus, 6), focus


def _place_rbcs(
    rng: np.random.Generator,
    canvas: _Canvas,
    cfg: SimConfig,
    p: int,
    rbc_stain: np.ndarray,
    wbc: tuple[float, float, float],
) -> list[tuple[float, float, float]]:
    """Red cells: random sequential placement with limited overlap, avoiding the white cell's core.

    ``wbc`` is the white cell's ``(centre y, centre x, core radius)`` in canvas pixels. Returns ``(y, x, r)``.
    """
    px = cfg.optics.pixel_um
    wcy, wcx, wbc_r = wbc
    target = float(rng.uniform(*cfg.rbc_coverage)) * p * p
    covered = 0.0
    placed: list[tuple[float, float, float]] = []
    tries = 0
    pys = np.empty(0)
    pxs = np.empty(0)
    prs = np.empty(0)
    while covered < target and tries < 3000:
        tries += 1
        radius_um = min(max(float(rng.normal(3.75, 0.25)), 3.0), 4.6)
        r_px = radius_um / px
        cy, cx = rng.uniform(0, p, 2)
        dwy = (cy - wcy + p / 2) % p - p / 2
        dwx = (cx - wcx + p / 2) % p - p / 2
        if math.hypot(dwy, dwx) < (wbc_r + r_px) * 0.9:
            continue
        if pys.size:
            dy = (cy - pys + p / 2) % p - p / 2
            dx = (cx - pxs + p / 2) % p - p / 2
            # mostly touching at most, sometimes overlapping (as in a real monolayer's thicker parts)
            lim = (r_px + prs) * (0.72 if rng.random() < 0.15 else 0.98)
            if (dy * dy + dx * dx < lim * lim).any():
                continue
        od, r_px = _rbc(rng, px, rbc_stain, radius_um)
        placed.append((cy, cx, r_px))
        pys, pxs, prs = np.append(pys, cy), np.append(pxs, cx), np.append(prs, r_px)
        covered += math.pi * r_px * r_px
        hh = od.shape[0]
        depth = rng.normal(0.0, cfg.rbc_depth_sd_um)
        canvas.add(depth, round(cy) - hh // 2, round(cx) - hh // 2, od)
    return placed


def _add_small_objects(
    rng: np.random.Generator, canvas: _Canvas, cfg: SimConfig, p: int, nuc_scale: np.ndarray
) -> None:
    """Platelets, debris specks and the faint plasma stain."""
    px = cfg.optics.pixel_um
    for _ in range(int(rng.integers(cfg.platelets[0], cfg.platelets[1] + 1) * (p * p) / (401 * 401))):
        od = _platelet(rng, px, nuc_scale)
        hh = od.shape[0]
        cy, cx = rng.uniform(0, p, 2)
        canvas.add(rng.normal(0.05, 0.05), int(cy) - hh // 2, int(cx) - hh // 2, od)

    for _ in range(int(rng.integers(cfg.debris[0], cfg.debris[1] + 1) * (p * p) / (401 * 401))):
        od = _debris(rng, px)
        hh = od.shape[0]
        cy, cx = rng.uniform(0, p, 2)
        canvas.add(rng.normal(0.0, 0.1), int(cy) - hh // 2, int(cx) - hh // 2, od)

    plasma = _tint(0.006 + 0.004 * _smooth_noise(rng, (p, p), 6), np.array((0.5, 1.0, 0.6), np.float32))
    canvas.add(0.0, 0, 0, plasma)


def make_field(
    rng: np.random.Generator, config: SimConfig | None = None, *, size: int | None = None
) -> SmearField:
    """Generate a random smear field (no rendering yet).

    Parameters
    ----------
    rng : numpy.random.Generator
    config : SimConfig, optional
    size : int, optional
        Overrides ``config.size``.

    Returns
    -------
    SmearField
        Depths are in the focus frame: offset 0 µm is the nominal best focus (the red-cell layer, shifted by the
        optics' best-focus shift and a random sub-step jitter).
    """
    cfg = config or SimConfig()
    out_size = int(size or cfg.size)
    optics = cfg.optics
    px = optics.pixel_um
    p = canvas_len(out_size)
    canvas = _Canvas(p)
    sv = cfg.stain_variation

    # stain: per-field multiplicative factors per channel for eosin (red cells) and azure (nuclei)
    rbc_stain = np.array((0.009, 0.066, 0.042), np.float32) * np.exp(rng.normal(0, 0.12 * sv, 3)).astype(
        np.float32
    )
    rbc_stain *= np.float32(np.exp(rng.normal(0, 0.15 * sv)))
    nuc_scale = np.exp(rng.normal(0, 0.1 * sv, 3)).astype(np.float32) * np.float32(
        np.exp(rng.normal(0, 0.12 * sv))
    )
    background = np.clip(
        np.array((0.86, 0.89, 0.86))
        * np.exp(rng.normal(0, 0.035 * sv, 3))
        * np.exp(rng.normal(0, 0.05 * sv)),
        0.5,
        0.97,
    )

    # white cell near the centre, higher than the red cells
    weights = np.array([_WBC_FREQUENCY[t] for t in cfg.wbc_types])
    kind = str(cfg.wbc_types[int(rng.choice(len(cfg.wbc_types), p=weights / weights.sum()))])
    c_od, n_od, (ncy, ncx) = _wbc(rng, px, kind, nuc_scale)
    wh = c_od.shape[0]
    wcy = out_size / 2 + rng.normal(0, out_size * 0.06)
    wcx = out_size / 2 + rng.normal(0, out_size * 0.06)
    wbc_depth = float(rng.uniform(*cfg.wbc_height_um))
    y0, x0 = round(wcy) - wh // 2, round(wcx) - wh // 2
    canvas.add(wbc_depth, y0, x0, c_od)
    canvas.add(wbc_depth + 0.1, y0, x0, n_od)  # the nucleus bulges above the cytoplasm
    wbc_r = wh / 2 * 0.85
    nucleus = [[round(wcy + ncy) % p, round(wcx + ncx) % p]]

    placed = _place_rbcs(rng, canvas, cfg, p, rbc_stain, (wcy, wcx, wbc_r))
    _add_small_objects(rng, canvas, cfg, p, nuc_scale)

    absorbed, depths = canvas.composite()
    # Offsets are "focal plane − object depth"; shifting depths by the focus position puts best focus at 0.
    # Depths and focus live on a 0.05 µm grid so that transfer functions are shared between stacks (cache).
    depths_focus, focus = focus_frame(absorbed, depths, optics, rng=rng, jitter_um=cfg.focus_jitter_um)

    illumination = None
    if cfg.vignetting > 0:
        cyv, cxv = rng.normal(out_size / 2, out_size * 0.1, 2)
        ramp = np.arange(out_size, dtype=np.float32)
        r2 = ((ramp - np.float32(cyv)) ** 2)[:, None] + ((ramp - np.float32(cxv)) ** 2)[None, :]
        illumination = (1.0 - np.float32(cfg.vignetting * sv / (0.5 * out_size**2)) * r2).astype(np.float32)

    focus_map = None
    info: dict[str, Any] = {
        "wbc_type": kind,
        "wbc_depth_um": round(wbc_depth, 4),
        "rbc_count": len(placed),
        "focus_um": round(focus, 4),
        "layer_depths_um": [round(float(d), 4) for d in depths_focus],
        "background": [round(float(b), 4) for b in background],
    }
    if cfg.focus_map_um > 0:
        yy, xx = np.mgrid[0:out_size, 0:out_size].astype(np.float32) / out_size - 0.5
        a, b, c = rng.normal(0, 1, 3)
        surf = (
            a * yy
            + b * xx
            + c * (yy * yy + xx * xx - 1 / 6)
            + 0.3 * _smooth_noise(rng, (out_size, out_size), 3)
        )
        surf = surf - surf.mean()
        focus_map = (surf / max(np.ptp(surf), 1e-6) * cfg.focus_map_um).astype(np.float32)
        t = cfg.focus_map_tiles
        tiles = cv2.resize(focus_map, (t, t), interpolation=cv2.INTER_AREA)
        info["focus_map_tiles_um"] = np.round(tiles, 4).tolist()

    phase = None
    if cfg.phase_rad > 0:
        dens = absorbed.mean(axis=-1)
        top = max(float(np.percentile(dens.sum(axis=0), 99.5)), 1e-6)
        phase = dens * np.float32(cfg.phase_rad / top)
    return SmearField(
        absorbed,
        depths_focus,
        background,
        optics,
        size=(out_size, out_size),
        illumination=illumination,
        focus_map=focus_map,
        nucleus_centres=[c for c in nucleus if c[0] < out_size and c[1] < out_size],
        info=info,
        phase=phase,
    )
