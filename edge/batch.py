"""Batch restoration of files and folders: what ``virtualfocus restore`` runs.

- **Inputs**: files, folders (``recursive=True`` walks sub-folders) and glob patterns (``"scans/**/*.tif"``).
  A folder's files keep their relative paths under the output folder.
- **Layouts**: single images (PNG, JPEG, BMP, TIFF; gray, RGB or RGBA; 8/16-bit) and multi-page TIFF / OME-TIFF /
  ImageJ hyperstacks (z-stacks, time series, channels) read with tifffile. Every 2-D plane (with its RGB(A)
  samples) is restored on its own and written back in the same layout: same shape, dtype and plane order, the
  OME-XML or ImageJ metadata, description and resolution kept. A layout the product cannot restore (several
  image series, a pyramid, samples other than 1/3/4, an unsupported pixel type) is refused with a message; nothing
  is written for it.
- **Never half a file**: every output is written to a temporary file in the target folder and renamed; a file
  that fails leaves nothing under its name. SIGTERM or Ctrl-C stops after the current file.
- **Resumable**: ``skip_existing=True`` leaves outputs already there alone.
- **Pipelined**: a reader thread decodes the next files and a writer thread encodes finished ones while the
  runtime restores (both release the GIL in OpenCV/tifffile/zlib), so I/O hides behind inference.
"""

from __future__ import annotations

import glob
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, VirtualFocusError
from .imageio import READ_EXTENSIONS, read_image, write_image_atomic

__all__ = ["BatchItem", "BatchSummary", "PlaneResult", "discover", "read_tiff", "restore_batch", "split_planes",
           "write_tiff_atomic"]

_TIFF = (".tif", ".tiff")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BatchItem:
    """One input file and where its restored copy goes."""

    src: Path
    dst: Path


@dataclass
class PlaneResult:
    """What the runtime said about one restored plane."""

    status: str
    latency_ms: float
    variant: str
    defocus_um: float | None
    signed: bool
    trusted: bool | None
    message: str = ""


@dataclass
class BatchSummary:
    """Counts and timings of one batch (per plane; a z-stack of 17 planes counts 17)."""

    files: int = 0
    files_done: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    planes: int = 0
    in_focus: int = 0
    untrusted: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        """One-line summary for the terminal."""
        lat = (f"; latency p50 {np.percentile(self.latencies_ms, 50):.1f} ms, "
               f"p95 {np.percentile(self.latencies_ms, 95):.1f} ms" if self.latencies_ms else "")
        rate = f"; {self.planes / self.wall_s:.1f} images/s" if self.wall_s > 0 and self.planes else ""
        return (f"{self.files_done} of {self.files} file(s) restored ({self.planes} image(s): "
                f"{self.planes - self.in_focus} restored, {self.in_focus} in focus, {self.untrusted} untrusted), "
                f"{self.files_failed} failed, {self.files_skipped} skipped{lat}{rate}")


# ------------------------------------------------------------------------------------------------ discovery
def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in READ_EXTENSIONS and not p.name.startswith(".")


def discover(inputs: Sequence[str], out_dir: Path, *, recursive: bool = False) -> list[BatchItem]:
    """Files to restore and their output paths.

    Raises
    ------
    InputError
        An input that is neither a file, a folder nor a glob matching something (named in the message).
    """
    items: list[BatchItem] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            walk = p.rglob("*") if recursive else p.iterdir()
            items += [BatchItem(f, out_dir / f.relative_to(p)) for f in sorted(walk) if _is_image(f)]
        elif p.exists():
            items.append(BatchItem(p, out_dir / p.name))
        elif _GLOB_CHARS & set(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            if not matches:
                raise InputError(f"{arg}: the pattern matches no file")
            root = Path(os.path.commonpath([str(m.parent) for m in matches]))
            items += [BatchItem(m, out_dir / m.relative_to(root)) for m in matches if _is_image(m)]
        else:
            raise InputError(f"{arg}: no such file or folder; expected image files ({', '.join(READ_EXTENSIONS)}), "
                             "folders of them or a glob pattern")
    seen: dict[Path, Path] = {}
    for it in items:
        if it.dst in seen and seen[it.dst] != it.src:
            raise InputError(f"{it.src} and {seen[it.dst]} would both be written to {it.dst}; restore them into "
                             "different --out folders")
        seen[it.dst] = it.src
    return items


# ------------------------------------------------------------------------------------------------ TIFF layouts
@dataclass
class TiffData:
    """A TIFF's first image series and what is needed to write it back unchanged but for the pixels."""

    array: np.ndarray
    axes: str
    write_kwargs: dict[str, Any]


def read_tiff(path: Path) -> TiffData:
    """Read a (multi-page) TIFF's image series with its layout and metadata.

    Raises
    ------
    InputError
        Unreadable file, several image series or a pyramid, or samples per pixel other than 1, 3 or 4.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series
            if not series:
                raise InputError(f"{path}: not a readable TIFF (no image found); expected a baseline, OME- or ImageJ TIFF")
            if len(series) > 1 or len(series[0].levels) > 1:
                raise InputError(f"{path}: {len(series)} image series / {len(series[0].levels)} pyramid levels; "
                                 "expected one image, z-stack or time series per file (split the file first)")
            s = series[0]
            try:
                arr = s.asarray()
            except ValueError as e:  # a codec tifffile lacks (LZW, JPEG without imagecodecs): OpenCV decodes it
                arr = _opencv_pages(path, s.shape, e)
            page = tf.pages.first
            kw: dict[str, Any] = {"photometric": page.photometric, "planarconfig": page.planarconfig}
            if page.compression in (8, 32946):  # deflate: tifffile writes it without extra codecs
                kw["compression"] = "zlib"
            if "XResolution" in page.tags and "YResolution" in page.tags:
                kw["resolution"] = (page.tags["XResolution"].value, page.tags["YResolution"].value)
                if "ResolutionUnit" in page.tags:
                    kw["resolutionunit"] = page.tags["ResolutionUnit"].value
            if tf.is_ome and tf.ome_metadata:
                kw.update(description=tf.ome_metadata, metadata=None)
            elif tf.is_imagej and tf.imagej_metadata is not None:
                # tifffile recomputes the hyperstack counts from the shape; the axes say which is which
                derived = {"ImageJ", "images", "frames", "slices", "channels", "hyperstack"}
                md = {k: v for k, v in tf.imagej_metadata.items() if k not in derived}
                kw.update(imagej=True, metadata={**md, "axes": s.axes})
            elif tf.is_shaped:
                kw["metadata"] = {"axes": s.axes}
            else:
                kw["metadata"] = None
                if page.description:
                    kw["description"] = page.description
            return TiffData(arr, s.axes, kw)
    except InputError:
        raise
    except Exception as e:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: not a readable TIFF ({type(e).__name__}: {e}); expected a baseline, "
                         "OME- or ImageJ TIFF") from e


def _opencv_pages(path: Path, shape: tuple[int, ...], why: Exception) -> np.ndarray:
    """Decode every page with OpenCV (RGB order), for compressions tifffile cannot decode without imagecodecs."""
    import cv2

    ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
    if not ok or not pages:
        raise InputError(f"{path}: cannot decode the TIFF's pixels ({why})")
    conv = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}
    arr = np.stack([cv2.cvtColor(p, conv[p.shape[2]]) if p.ndim == 3 and p.shape[2] in conv else p for p in pages])
    if arr.size != int(np.prod(shape)):
        raise InputError(f"{path}: OpenCV decoded {arr.shape}, the TIFF declares {shape}; cannot restore it safely")
    return arr.reshape(shape)


def split_planes(arr: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """``(N, H, W[, S])`` view of every 2-D plane and the function that puts restored planes back in layout."""
    if "Y" not in axes or "X" not in axes or len(axes) != arr.ndim:
        raise InputError(f"{path}: axes {axes!r} of shape {arr.shape}; expected an image with Y and X axes")
    keep = [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        if arr.shape[axes.index("S")] not in (1, 3, 4):
            raise InputError(f"{path}: {arr.shape[axes.index('S')]} samples per pixel; expected 1 (gray), 3 (RGB) "
                             "or 4 (RGBA)")
        keep.append(axes.index("S"))
    lead = [i for i in range(arr.ndim) if i not in keep]
    order = lead + keep
    moved = np.transpose(arr, order)
    n = int(np.prod([arr.shape[i] for i in lead])) if lead else 1
    flat = moved.reshape(n, *moved.shape[len(lead):])
    inverse = np.argsort(order)

    def back(planes: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(planes.reshape(moved.shape), inverse))

    return flat, back


def write_tiff_atomic(path: Path, array: np.ndarray, write_kwargs: dict[str, Any]) -> Path:
    """Write a TIFF next to ``path`` under a temporary name, then rename it into place."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        tifffile.imwrite(tmp, array, **write_kwargs)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ------------------------------------------------------------------------------------------------ the batch
@dataclass
class _Loaded:
    item: BatchItem
    planes: np.ndarray | None = None
    back: Callable[[np.ndarray], np.ndarray] | None = None
    tiff: TiffData | None = None
    error: str = ""


def _load(item: BatchItem) -> _Loaded:
    try:
        if item.src.suffix.lower() in _TIFF:
            td = read_tiff(item.src)
            planes, back = split_planes(td.array, td.axes, item.src)
            if td.array.dtype not in (np.uint8, np.uint16, np.float32):
                raise InputError(f"{item.src}: pixel type {td.array.dtype}; expected uint8, uint16 or float32")
            return _Loaded(item, planes, back, td)
        img = read_image(item.src)
        return _Loaded(item, img[None], lambda p: p[0])
    except (InputError, OSError) as e:
        return _Loaded(item, error=str(e))


def _write(loaded: _Loaded, restored: np.ndarray) -> None:
    assert loaded.back is not None
    out = loaded.back(restored)
    if loaded.tiff is not None:
        write_tiff_atomic(loaded.item.dst, out, loaded.tiff.write_kwargs)
    else:
        write_image_atomic(loaded.item.dst, out)


def _prefetch(items: Sequence[BatchItem], stop: threading.Event, depth: int = 4) -> Iterator[_Loaded]:
    """Decode the next files on a reader thread, at most ``depth`` ahead."""
    q: queue.Queue[_Loaded | None] = queue.Queue(maxsize=depth)

    def run() -> None:
        for it in items:
            if stop.is_set():
                break
            q.put(_load(it))
        q.put(None)

    threading.Thread(target=run, name="virtualfocus-batch-reader", daemon=True).start()
    while (got := q.get()) is not None:
        yield got


class _StopOnSignal:
    """SIGTERM / SIGINT set a flag; the batch stops after the current file (main thread only)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.saved[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def restore_batch(runtime: Any, items: Sequence[BatchItem], *, skip_existing: bool = False,
                  progress: bool | None = None, on_plane: Callable[[BatchItem, int, int, PlaneResult], None] | None = None
                  ) -> BatchSummary:
    """Restore every item with ``runtime`` (a :class:`~virtualfocus.edge.FocusRuntime`), plane by plane.

    Parameters
    ----------
    runtime : FocusRuntime
        Used through ``runtime.restore(image)`` only.
    items : sequence of BatchItem
        From :func:`discover`.
    skip_existing : bool
        Leave items whose output already exists alone (resume an interrupted batch).
    progress : bool, optional
        tqdm progress bar with ETA; default: only when stderr is a terminal.
    on_plane : callable, optional
        Called with ``(item, plane_index, planes_in_file, PlaneResult)`` for every restored plane (warnings).

    Returns
    -------
    BatchSummary
        ``interrupted`` is True when SIGTERM/SIGINT stopped the batch early.
    """
    from tqdm import tqdm

    summary = BatchSummary(files=len(items))
    todo = [it for it in items if not (skip_existing and it.dst.exists())]
    summary.files_skipped = len(items) - len(todo)
    stop = threading.Event()
    show = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    pending: list[tuple[_Loaded, Future[None]]] = []
    with _StopOnSignal(stop), ThreadPoolExecutor(1, thread_name_prefix="virtualfocus-batch-writer") as writer, \
            tqdm(total=len(todo), unit="file", disable=not show, file=sys.stderr) as bar:
        for loaded in _prefetch(todo, stop):
            if stop.is_set():
                break
            if loaded.error:
                summary.files_failed += 1
                summary.results.append({"input": str(loaded.item.src), "ok": False, "error": loaded.error})
                print(f"error: {loaded.error}", file=sys.stderr)
                bar.update(1)
                continue
            try:
                restored, rows = _restore_planes(runtime, loaded, summary, on_plane)
            except VirtualFocusError as e:
                summary.files_failed += 1
                summary.results.append({"input": str(loaded.item.src), "ok": False, "error": str(e)})
                print(f"error: {loaded.item.src}: {e}", file=sys.stderr)
                bar.update(1)
                continue
            pending.append((loaded, writer.submit(_write, loaded, restored)))
            row: dict[str, Any] = {"input": str(loaded.item.src), "output": str(loaded.item.dst), "ok": True}
            row.update(rows[0] if len(rows) == 1 else {"planes": rows})  # a single image: its fields at top level
            summary.results.append(row)
            pending = _collect(pending, summary, wait=False)
            bar.update(1)
        _collect(pending, summary, wait=True)
    summary.interrupted = stop.is_set()
    summary.wall_s = time.perf_counter() - t0
    return summary


def _restore_planes(runtime: Any, loaded: _Loaded, summary: BatchSummary,
                    on_plane: Callable[[BatchItem, int, int, PlaneResult], None] | None
                    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    assert loaded.planes is not None
    out = np.empty_like(loaded.planes)
    rows = []
    for k, plane in enumerate(loaded.planes):
        frame = runtime.restore(plane)
        if frame.status.value in ("failed", "rejected"):
            raise VirtualFocusError(f"plane {k}: {frame.status.value}: {frame.message}")
        out[k] = frame.image
        res = PlaneResult(frame.status.value, float(frame.latency_ms), frame.variant, frame.defocus_um,
                          bool(frame.defocus is not None and frame.defocus.signed), frame.trusted, frame.message)
        summary.planes += 1
        summary.latencies_ms.append(res.latency_ms)
        summary.in_focus += res.status == "in-focus"
        summary.untrusted += res.trusted is False
        rows.append({"status": res.status, "latency_ms": round(res.latency_ms, 3), "variant": res.variant,
                     "defocus_um": None if res.defocus_um is None else round(res.defocus_um, 4),
                     "trusted": res.trusted})
        if on_plane is not None:
            on_plane(loaded.item, k, len(loaded.planes), res)
    return out, rows


def _collect(pending: list[tuple[_Loaded, Future[None]]], summary: BatchSummary, *, wait: bool
             ) -> list[tuple[_Loaded, Future[None]]]:
    """Account for finished writes; a failed write turns its file into a failure (nothing left on disk)."""
    left = []
    for loaded, fut in pending:
        if not wait and not fut.done():
            left.append((loaded, fut))
            continue
        try:
            fut.result()
            summary.files_done += 1
        except (InputError, OSError, ValueError) as e:
            summary.files_failed += 1
            for r in summary.results:
                if r.get("input") == str(loaded.item.src):
                    r.update(ok=False, error=str(e))
            print(f"error: {loaded.item.dst}: {e}", file=sys.stderr)
    return left
