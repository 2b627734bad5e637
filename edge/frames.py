"""What the runtime hands back for every capture: :class:`RestoredFrame` and its :class:`FrameStatus`.

Both are re-exported from :mod:`virtualfocus.edge` and :mod:`virtualfocus.edge.runtime`; this module depends on
nothing but numpy and the defocus estimate type, so events, integrations and the runtime can all import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from .defocus import DefocusEstimate
from .focusmap import FocusMap

__all__ = ["PASSTHROUGH", "FrameStatus", "RestoredFrame"]

#: Name of the last rung of every ladder: the frame is returned untouched.
PASSTHROUGH = "passthrough"


class FrameStatus(StrEnum):
    """What happened to a frame."""

    RESTORED = "restored"  #: restored by a model
    IN_FOCUS = "in-focus"  #: already in focus (defocus estimate in the in-focus band, or focus measure): untouched
    PASSTHROUGH = "passthrough"  #: the latency guard is at the pass-through rung: returned untouched
    LATE = "late"  #: missed its hard deadline: returned raw at the deadline
    OVERFLOW = "overflow"  #: the queue was full: returned raw at once
    FAILED = "failed"  #: every backend failed on it: returned raw
    REJECTED = "rejected"  #: not an image the runtime accepts: returned as given, see ``message``
    CLOSED = "closed"  #: the runtime was closed without draining: returned raw

    @property
    def restored(self) -> bool:
        return self is FrameStatus.RESTORED


@dataclass(frozen=True, kw_only=True)
class RestoredFrame:
    """A frame's result (built with keywords only).

    Attributes
    ----------
    image : np.ndarray
        Same shape and dtype as the capture (the capture itself when not restored).
    status : FrameStatus
    latency_ms : float
        Time spent restoring (pre-processing, inference, post-processing).
    variant : str
        Model variant that produced ``image`` (``"passthrough"`` when none did).
    backend : str
        ``"openvino"``, ``"onnxruntime"`` or ``""``.
    index : int
        Sequence number given by the runtime (submission order).
    meta : Mapping or None
        The caller's metadata, untouched.
    queue_ms : float
        Time between ``submit`` and the start of restoration (0 for ``restore``).
    message : str
        Why a frame was not restored (or why a restored one is not trusted), in one line.
    focus : float or None
        The capture's focus measure F, when the runtime's in-focus check computed it.
    defocus_um : float or None
        The capture's estimated defocus in µm (signed when ``defocus.signed``); None when the runtime has no
        defocus estimator, the estimate failed, or the frame was not restored (late, overflow, pass-through …).
    trusted : bool or None
        Whether ``defocus_um`` lies in the restoring model's trusted range (``trusted_defocus_um`` of its manifest,
        else :data:`~virtualfocus.edge.defocus.DEFAULT_TRUSTED_UM`); None without an estimate.
        A ``False`` frame was restored as usual but its output must not be relied on.
    defocus : DefocusEstimate or None
        The whole estimate (signedness, confidence) behind ``defocus_um``.
    focus_map : FocusMap or None
        Estimated |defocus| (µm) per tile (:class:`~virtualfocus.edge.focusmap.FocusMap`), when the runtime was
        made with ``focus_map=True`` and its model ran on the capture (restored, or found in focus by its gain);
        None otherwise (``message`` says why when a map was asked for but could not be made).
    """

    image: np.ndarray
    status: FrameStatus
    latency_ms: float
    variant: str
    backend: str = ""
    index: int = -1
    meta: Mapping[str, Any] | None = None
    queue_ms: float = 0.0
    message: str = ""
    focus: float | None = None
    defocus_um: float | None = None
    trusted: bool | None = None
    defocus: DefocusEstimate | None = None
    focus_map: FocusMap | None = None

    def metadata(self) -> dict[str, Any]:
        """Flat ``virtualfocus.*`` keys to merge into an acquisition's per-frame metadata.

        ``virtualfocus.trusted`` is always present (None without an estimate); ``virtualfocus.defocus_um`` and
        ``virtualfocus.defocus_signed`` only when the runtime estimated the capture's defocus;
        ``virtualfocus.focus_map_um`` (rows of |defocus| per tile, None for a blank tile),
        ``virtualfocus.focus_map_edges`` (tile edges, y then x, in pixels) and
        ``virtualfocus.focus_map_untrusted_share`` only when the frame carries a focus map.
        """
        md: dict[str, Any] = {
            "virtualfocus.status": self.status.value,
            "virtualfocus.latency_ms": round(self.latency_ms, 3),
            "virtualfocus.variant": self.variant,
            "virtualfocus.backend": self.backend,
            "virtualfocus.message": self.message,
            "virtualfocus.trusted": self.trusted,
        }
        if self.defocus_um is not None:
            md["virtualfocus.defocus_um"] = round(self.defocus_um, 4)
            md["virtualfocus.defocus_signed"] = bool(self.defocus.signed) if self.defocus is not None else False
        if self.focus_map is not None:
            d = self.focus_map.to_dict()
            md["virtualfocus.focus_map_um"] = d["um"]
            md["virtualfocus.focus_map_edges"] = [d["y_edges"], d["x_edges"]]
            md["virtualfocus.focus_map_untrusted_share"] = d["untrusted_share"]
        return md
