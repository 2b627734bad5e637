"""Small overrides of every registry variant: paper sizes are too heavy for the CPU test budget; these keep every
architectural feature (discriminators, frozen feature networks, two inputs) while shrinking widths and depths."""

from __future__ import annotations

SMALL_CLS = {"filters": (4, 8, 8, 8, 8), "hidden": (16, 16), "pool_size": 2}
SMALL: dict[str, dict] = {
    "pix2pix": {"filters": 8, "levels": 5, "d_filters": 8},
    "pix2pix-cnn": {"filters": 8, "levels": 5},
    "pan": {"filters": 8, "levels": 3, "d_filters": (8, 8, 8, 8, 8, 8, 8, 8, 4)},
    "deblurgan": {"filters": 8, "blocks": 2, "d_filters": 8, "perceptual_network": "random"},
    "pix2pix-dist": {"filters": 8, "levels": 5, "d_filters": 8, "distance_classifier": "random"},
    "pix2pix-dist-2inputs": {"filters": 8, "levels": 5, "d_filters": 8, "distance_classifier": "random"},
    "pix2pix-dist-fast": {"distance_classifier": "random"},
    "focus-distance-classifier": SMALL_CLS,
    "autoencoder-whole": {},
    "autoencoder-split": {"filters": (8, 8, 8)},
    "tsva": {"filters": 8, "levels": 2},
    "dbmid-blur-classifier": {"filters": (4, 8, 8, 8, 8), "hidden": (16, 16), "pool_size": 2},
    "dbmid-defocus": {"filters": (4, 8, 8), "layers": 6},
    "dbmid-motion": {"filters": (4, 8, 8), "layers": 6},
    "mmdf-focus-classifier": {"filters": (4, 8), "hidden": (16,), "pool_size": 4},
    "fusegan": {"filters": 8, "growth": 4, "levels": 2, "d_filters": 8},
    "nafnet-w16": {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)},
    "nafnet-w32": {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)},
    "unet-f40-l5": {"filters": 8, "levels": 3},
    "unet-f16-l4": {"filters": 8, "levels": 3},
}
