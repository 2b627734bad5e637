"""Sample data: a simulated defocused smear z-stack and its in-focus plane, so a new user can try the widget."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["sample_stack"]


def sample_stack(size: int = 256, seed: int = 2026) -> list[tuple[Any, dict[str, Any], str]]:
    """Two layers: ``defocus stack`` (17 planes, −1.6…+1.6 µm, RGB uint8) and ``ground truth`` (the sharp plane)."""
    from virtualfocus.simulation.simulate import SimConfig, simulate_stack

    st = simulate_stack(seed, config=SimConfig(size=size), name="sample")
    offsets = [float(o) for o in st.offsets_um]
    step = offsets[1] - offsets[0]
    meta = {"virtualfocus": {"offsets_um": offsets, "sharp_index": int(st.sharp_index), "source": "simulated"}}
    return [
        (np.ascontiguousarray(st.planes), {"name": "defocus stack", "rgb": True, "scale": (step, 1, 1),
                                           "translate": (offsets[0], 0, 0), "metadata": meta}, "image"),
        (np.ascontiguousarray(st.planes[st.sharp_index]), {"name": "ground truth", "rgb": True, "visible": False},
         "image"),
    ]
