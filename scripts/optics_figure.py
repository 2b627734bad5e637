"""README figure: a rendered field beside a real Chula field, each in focus and on both sides of focus.

Usage::

    python scripts/optics_figure.py [--chula ../shared/data/chula-rbc12/Dataset/1.jpg] [--out PATH]

Top row: a simulated smear field (``virtualfocus simulate`` defaults: 100×/1.25 oil, σ = 0.72, phase 0.4 rad) at
−1.0, 0 and +1.0 µm. Bottom row: a real Chula RBC-12 field (in focus, as photographed) and the same field
defocused through one randomized imaging chain (:func:`virtualfocus.simulation.randomize.defocus_image`) four
steps either side of focus. Writes a PNG (default ``benchmarks/results/optics-fields.png``, < 1 MB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from virtualfocus.simulation.randomize import RandomOptics, defocus_image, sample_optics
from virtualfocus.simulation.simulate import SimConfig, make_field

ROOT = Path(__file__).resolve().parents[1]
TILE = 256


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(img)
    cv2.rectangle(out, (0, 0), (TILE, 22), (255, 255, 255), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _tile(img: np.ndarray) -> np.ndarray:
    a = img if img.dtype == np.uint8 else (img.astype(np.float32) / 257.0).clip(0, 255).astype(np.uint8)
    return cv2.resize(a, (TILE, TILE), interpolation=cv2.INTER_AREA)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--chula", type=Path, default=ROOT / ".." / "shared" / "data" / "chula-rbc12" / "Dataset" / "1.jpg"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "optics-fields.png")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    field = make_field(np.random.default_rng(args.seed), SimConfig(size=320))
    sim = field.render_planes([-1.0, 0.0, 1.0], rng=np.random.default_rng(0))
    top = [_label(_tile(p), f"simulated, {z:+.1f} um") for p, z in zip(sim, (-1.0, 0.0, 1.0), strict=True)]

    real = cv2.imread(str(args.chula), cv2.IMREAD_COLOR)
    if real is None:
        raise SystemExit(f"{args.chula}: unreadable; pass --chula with a sharp smear image")
    real = np.ascontiguousarray(real[..., ::-1])
    h, w = real.shape[:2]
    crop = np.ascontiguousarray(real[(h - 320) // 2 : (h + 320) // 2, (w - 320) // 2 : (w + 320) // 2])
    chain = sample_optics(
        np.random.default_rng(11),
        RandomOptics(gray_probability=0.0, jpeg_probability=0.0, pixel_um=(0.2, 0.2)),
    )
    planes = defocus_image(crop, chain, chain.offsets_um[[4, 12]], rng=np.random.default_rng(1))
    k = 4 * chain.step_um
    bottom = [
        _label(_tile(planes[0]), f"Chula, semi-synthetic -{k:.1f} um"),
        _label(_tile(crop), "Chula RBC-12, real, in focus"),
        _label(_tile(planes[1]), f"Chula, semi-synthetic +{k:.1f} um"),
    ]
    grid = np.vstack([np.hstack(top), np.hstack(bottom)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB); chain: {chain.to_dict()['optics']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
