"""The cells of a blood smear as optical-density patches, and the periodic layered canvas they are painted on.

Red cells (Evans–Fung biconcave discs with central pallor), white cells (neutrophil, lymphocyte, monocyte,
eosinophil, basophil: lobed/round nuclei with chromatin texture, granular cytoplasm), platelets and debris, in
May-Grünwald-Giemsa-like colours. :func:`.specimen.make_field` places them on a :class:`_Canvas`.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import cv2
import numpy as np

_LOG10 = math.log(10.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random texture in ~[-1, 1] with about ``cells`` features per side (cubic upsampling)."""
    cells = max(2, int(cells))
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _wrap(start: int, n: int, p: int) -> list[tuple[int, int, int]]:
    """``(canvas start, patch start, length)`` pieces of ``n`` ≤ ``p`` cells from ``start`` on a ring of ``p``."""
    a = start % p
    first = min(n, p - a)
    return [(a, 0, first)] if first == n else [(a, 0, first), (0, first, n - first)]


class _Canvas:
    """Per-depth optical-density layers on a periodic canvas (objects wrap around the borders)."""

    def __init__(self, p: int, depth_quantum_um: float = 0.1) -> None:
        self.p = p
        self.q = depth_quantum_um
        self.layers: dict[int, np.ndarray] = {}

    def add(self, depth_um: float, y0: int, x0: int, od: np.ndarray) -> None:
        key = round(depth_um / self.q)
        layer = self.layers.get(key)
        if layer is None:
            layer = self.layers[key] = np.zeros((self.p, self.p, 3), np.float32)
        h, w = od.shape[:2]
        if h > self.p or w > self.p:  # a patch larger than the (small) canvas: wrapped indices, as always
            ys = (y0 + np.arange(h)) % self.p
            xs = (x0 + np.arange(w)) % self.p
            layer[np.ix_(ys, xs)] += od
            return
        # at most four rectangles once wrapped around the borders
        for ly, py, n_y in _wrap(y0, h, self.p):
            for lx, px, n_x in _wrap(x0, w, self.p):
                layer[ly : ly + n_y, lx : lx + n_x] += od[py : py + n_y, px : px + n_x]

    def composite(self) -> tuple[np.ndarray, np.ndarray]:
        """Absorbed fraction per layer, composited front to back, and layer depths (sorted)."""
        keys = sorted(self.layers)
        depths = np.array([k * self.q for k in keys])
        out = np.empty((len(keys), self.p, self.p, 3), np.float32)
        passed = np.ones((self.p, self.p, 3), np.float32)
        # transmitted t = 10^-OD; absorbed in a layer = passed·(1 − t) = passed − passed·t; then passed ← passed·t
        flat = passed.reshape(self.p, -1)  # 2-D single-channel views for OpenCV
        t = np.empty_like(flat)
        for i, k in enumerate(keys):
            cv2.exp(np.multiply(self.layers[k].reshape(self.p, -1), np.float32(-_LOG10)), dst=t)
            cv2.multiply(flat, t, dst=t)
            cv2.subtract(flat, t, dst=out[i].reshape(self.p, -1))
            flat, t = t, flat
        return out, depths


@functools.lru_cache(maxsize=64)
def _grid_theta(half: int) -> np.ndarray:
    """Read-only float32 polar angle on :func:`_grid` (0 at the centre)."""
    yy, xx, _ = _grid(half)
    theta = np.arctan2(yy, xx)
    theta.setflags(write=False)
    return theta


@functools.lru_cache(maxsize=64)
def _grid_angles(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read-only float32 ``sin 2θ, cos 2θ, sin 3θ, cos 3θ`` of the polar angle θ on :func:`_grid`."""
    theta = _grid_theta(half).astype(np.float64)
    out = tuple(f(k * theta).astype(np.float32) for k in (2, 3) for f in (np.sin, np.cos))
    for a in out:
        a.setflags(write=False)
    return out  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def _grid(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only float32 ``(yy, xx, radius)`` of a ``(2·half+1)²`` patch centred on 0 (cell patches reuse them)."""
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    rr = np.hypot(yy, xx)
    for a in (yy, xx, rr):
        a.setflags(write=False)
    return yy, xx, rr


def _tint(m: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 optical density: the ``(H, W)`` amount ``m`` times a per-channel ``colour``."""
    m = np.asarray(m, dtype=np.float32)
    return cv2.merge([m * np.float32(c) for c in np.asarray(colour, dtype=np.float32)])


def _soft_disc_mask(r: np.ndarray, radius: float, soft: float = 0.7) -> np.ndarray:
    m = (radius - r) / soft + 0.5
    return np.minimum(np.maximum(m, 0.0, out=m), 1.0, out=m)  # clip to 0..1 (np.clip's overhead adds up)


def _rbc(
    rng: np.random.Generator, px: float, stain: np.ndarray, radius_um: float
) -> tuple[np.ndarray, float]:
    """One red cell: Evans–Fung biconcave thickness profile → optical density patch, and its radius (px)."""
    kind = rng.random()
    r_px = radius_um / px
    half = math.ceil(r_px * 1.15) + 2
    yy, xx, _ = _grid(half)
    ang = rng.uniform(0, np.pi)
    ca, sa = math.cos(ang), math.sin(ang)
    u = xx * ca + yy * sa
    v = -xx * sa + yy * ca
    aspect = min(max(float(rng.normal(1.0, 0.05)), 0.85), 1.15)
    if kind < 0.06:  # elliptocyte / ovalocyte
        aspect = float(rng.uniform(1.2, 1.5))
    u *= 1.0 / aspect
    v *= aspect
    r = np.sqrt(u * u + v * v)
    # wobble 1 + 0.025 sin(2θ + φ₂) + 0.015 sin(3θ + φ₃), θ = θ₀ − ang the polar angle in the cell's frame:
    # expanded with the grid's cached sin/cos of 2θ₀, 3θ₀
    phi2 = rng.uniform(0, 6.3) - 2 * ang
    phi3 = rng.uniform(0, 6.3) - 3 * ang
    s2, c2, s3, c3 = _grid_angles(half)
    wobble = s2 * np.float32(0.025 * math.cos(phi2))
    wobble += c2 * np.float32(0.025 * math.sin(phi2))
    wobble += s3 * np.float32(0.015 * math.cos(phi3))
    wobble += c3 * np.float32(0.015 * math.sin(phi3))
    wobble += np.float32(1.0)
    if kind > 0.94:  # echinocyte-like crenation
        theta = _grid_theta(half) - np.float32(ang)
        wobble += 0.04 * np.maximum(np.sin(rng.integers(10, 16) * theta + rng.uniform(0, 6.3)), 0)
    rn = r / (r_px * wobble)
    rho2 = rn * rn
    s = np.minimum(np.maximum(1.0 - rho2, 0.0), 1.0)
    # Evans & Fung (1972): h = sqrt(1 - ρ²)(C0 + C1 ρ² + C2 ρ⁴), µm; C0 scaled for pallor variation
    c0 = 0.81 * float(rng.uniform(0.8, 1.6)) if kind > 0.05 else 2.2  # kind < 0.05: spherocyte, no pallor
    np.minimum(np.maximum(rho2, 0.0, out=rho2), 1.0, out=rho2)
    thick = np.sqrt(s) * (c0 + 7.83 * rho2 - 4.39 * rho2 * rho2) * (radius_um / 3.91)
    edge = _soft_disc_mask(rn * r_px, r_px, 0.8)
    thick = np.maximum(thick, 0.0) * edge
    # haemoglobin is not perfectly even: mottled texture at two scales (about 1.5 µm and 0.5 µm)
    tex = (
        1.0
        + 0.05 * _smooth_noise(rng, thick.shape, 5)
        + 0.03 * _smooth_noise(rng, thick.shape, max(5, int(2 * half * px / 0.5)))
    )
    # a thin darker rim: light refracted out of the objective's aperture at the cell's steep edge
    d = (rn - 0.97) * r_px
    rim = 0.6 * np.exp(-0.5 * (d / 1.2) ** 2)
    return _tint(thick * tex + rim, stain), r_px


def _shape_mask(h: int, w: int, draw: Any) -> np.ndarray:
    """Anti-aliased float mask drawn with OpenCV at 4× supersampling."""
    m = np.zeros((h * 4, w * 4), np.uint8)
    draw(m, 4)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _wbc(
    rng: np.random.Generator, px: float, kind: str, stain_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """One white cell: (cytoplasm OD, nucleus OD, nucleus centre offset (dy, dx)) patches of equal size."""
    radius_um = {"neutrophil": 6.0, "lymphocyte": 4.6, "monocyte": 7.5, "eosinophil": 6.3, "basophil": 5.6}[
        kind
    ]
    radius_um *= float(rng.uniform(0.9, 1.12))
    r = radius_um / px
    half = math.ceil(r * 1.12) + 3
    n = 2 * half + 1
    yy, xx, rr = _grid(half)
    theta = np.arctan2(yy, xx)
    wob = (
        1.0 + 0.03 * np.sin(3 * theta + rng.uniform(0, 6.3)) + 0.02 * np.sin(5 * theta + rng.uniform(0, 6.3))
    )
    cyto = _soft_disc_mask(rr, r * wob, 1.0)

    def poly(points: list[tuple[float, float]], width: float) -> Any:
        def draw(m: np.ndarray, s: int) -> None:
            pts = [(int((x + half) * s), int((y + half) * s)) for y, x in points]
            for a, b in itertools.pairwise(pts):
                cv2.line(m, a, b, 255, max(1, int(width * s)), cv2.LINE_AA)

        return draw

    if kind in ("neutrophil", "eosinophil", "basophil"):
        lobes = {"neutrophil": int(rng.integers(3, 6)), "eosinophil": 2, "basophil": int(rng.integers(2, 4))}[
            kind
        ]
        lobe_r = r * float(rng.uniform(0.24, 0.3)) * (1.25 if lobes == 2 else 1.0)
        # lobes along a random arc inside the cell, joined by thin chromatin strands
        a0 = rng.uniform(0, 2 * np.pi)
        arc = rng.uniform(2.0, 3.6)
        rad = r * rng.uniform(0.35, 0.5)
        cy, cx = rng.normal(0, r * 0.05, 2)
        centres = [
            (
                cy + rad * math.sin(a0 + arc * i / max(lobes - 1, 1)),
                cx + rad * math.cos(a0 + arc * i / max(lobes - 1, 1)),
            )
            for i in range(lobes)
        ]

        def draw_lobes(m: np.ndarray, s: int) -> None:
            poly(centres, lobe_r * 0.35)(m, s)
            for y, x in centres:
                ax = lobe_r * rng.uniform(0.85, 1.15)
                ay = lobe_r * rng.uniform(0.75, 1.05)
                cv2.ellipse(
                    m,
                    (int((x + half) * s), int((y + half) * s)),
                    (int(ax * s), int(ay * s)),
                    float(rng.uniform(0, 180)),
                    0,
                    360,
                    255,
                    -1,
                    cv2.LINE_AA,
                )

        nuc = _shape_mask(n, n, draw_lobes)
        ncy = float(np.mean([c[0] for c in centres]))
        ncx = float(np.mean([c[1] for c in centres]))
    elif kind == "lymphocyte":
        ncy, ncx = rng.normal(0, r * 0.08, 2)
        nr = r * rng.uniform(0.72, 0.85)
        nuc = _soft_disc_mask(np.hypot(yy - ncy, xx - ncx), nr * wob, 1.0)
    else:  # monocyte: kidney-shaped, indented nucleus
        ncy, ncx = rng.normal(0, r * 0.08, 2)
        nr = r * rng.uniform(0.55, 0.65)
        a = rng.uniform(0, 2 * np.pi)
        body = _soft_disc_mask(np.hypot((yy - ncy) / 0.85, xx - ncx), nr, 1.0)
        notch = _soft_disc_mask(
            np.hypot(yy - ncy - nr * 1.08 * math.sin(a), xx - ncx - nr * 1.08 * math.cos(a)), nr * 0.5, 4.0
        )
        nuc = np.clip(body - notch, 0, 1)
    nuc = np.minimum(nuc, cyto)
    chrom = (
        0.78
        + 0.22 * _smooth_noise(rng, (n, n), int(n * px / 0.6))
        + 0.1 * _smooth_noise(rng, (n, n), int(n * px / 0.25))
    )
    nuc_od = {  # per-channel OD of chromatin (haematoxylin/azure: absorbs red and green, passes blue)
        "neutrophil": (0.62, 0.80, 0.26),
        "lymphocyte": (0.70, 0.88, 0.28),
        "monocyte": (0.45, 0.60, 0.22),
        "eosinophil": (0.58, 0.76, 0.25),
        "basophil": (0.66, 0.85, 0.28),
    }[kind]
    cyto_od = {
        "neutrophil": (0.07, 0.10, 0.05),
        "lymphocyte": (0.22, 0.14, 0.05),
        "monocyte": (0.15, 0.13, 0.07),
        "eosinophil": (0.05, 0.10, 0.08),
        "basophil": (0.10, 0.10, 0.05),
    }[kind]
    cyto_tex = 1.0 + 0.15 * _smooth_noise(rng, (n, n), int(n * px / 0.8))
    c_od = _tint(cyto * cyto_tex, np.array(cyto_od, np.float32) * stain_scale)
    if kind in ("neutrophil", "eosinophil", "basophil"):
        # granules: dense small dots in the cytoplasm (neutrophil: fine lilac; eosinophil: coarse orange;
        # basophil: coarse dark purple, also over the nucleus)
        count, gsize, g_od = {
            "neutrophil": (int(r * r * 0.35), 0.10, (0.05, 0.08, 0.03)),
            "eosinophil": (int(r * r * 0.45), 0.17, (0.02, 0.11, 0.10)),
            "basophil": (int(r * r * 0.10), 0.20, (0.40, 0.48, 0.16)),
        }[kind]
        g = np.zeros((n, n), np.float32)
        gy = rng.uniform(0, n, count)
        gx = rng.uniform(0, n, count)
        np.add.at(g, (gy.astype(int), gx.astype(int)), 1.0)
        sig = gsize / px
        g = cv2.GaussianBlur(g, (0, 0), sig) * (2 * np.pi * sig * sig) * 0.8
        within = cyto if kind == "basophil" else cyto * (1 - nuc)
        c_od += _tint(np.clip(g, 0, 1.5) * within, np.array(g_od, np.float32) * stain_scale)
    n_od = _tint(nuc * chrom, np.array(nuc_od, np.float32) * stain_scale)
    return c_od.astype(np.float32), n_od.astype(np.float32), (float(ncy), float(ncx))


def _platelet(rng: np.random.Generator, px: float, stain_scale: np.ndarray) -> np.ndarray:
    r = float(rng.uniform(0.8, 1.5)) / px
    half = math.ceil(r * 1.3) + 2
    yy, xx, rr = _grid(half)
    theta = np.arctan2(yy, xx)
    wob = 1.0 + 0.15 * np.sin(2 * theta + rng.uniform(0, 6.3)) + 0.1 * np.sin(3 * theta + rng.uniform(0, 6.3))
    m = _soft_disc_mask(rr, r * wob, 0.8)
    tex = np.clip(0.5 + 0.6 * _smooth_noise(rng, m.shape, max(3, int(2 * half * px / 0.35))), 0.1, 1.4)
    return _tint(m * tex, np.array((0.32, 0.45, 0.14), np.float32) * stain_scale)


def _debris(rng: np.random.Generator, px: float) -> np.ndarray:
    """A small irregular speck of dust or stain precipitate (grey-brown, 0.3–1.2 µm)."""
    r = float(rng.uniform(0.3, 1.2)) / px
    half = math.ceil(r * 1.5) + 2
    yy, xx, rr = _grid(half)
    theta = np.arctan2(yy, xx)
    wob = 1.0 + 0.3 * np.sin(2 * theta + rng.uniform(0, 6.3)) + 0.2 * np.sin(5 * theta + rng.uniform(0, 6.3))
    m = _soft_disc_mask(rr, max(r * wob.min(), 0.6) * wob / wob.min() * 0.8, 0.8)
    return _tint(m * float(rng.uniform(0.15, 0.6)), np.array((0.9, 1.0, 1.1), np.float32))
