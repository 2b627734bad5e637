"""Reading and writing capture files for the CLI: PNG, TIFF, JPEG, BMP; 8/16-bit; gray, RGB, RGBA.

Reads decode by content (a PNG saved as ``.jpg`` still reads), refuse truncated PNG/JPEG files instead of
returning a half-decoded image, and return RGB(A) channel order. Writes go to a temporary file in the target
folder, then an atomic rename: a crash never leaves a half-written image under the final name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

__all__ = ["READ_EXTENSIONS", "read_image", "write_image_atomic"]

READ_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_ACCEPTED = "PNG, TIFF, JPEG or BMP (8- or 16-bit gray, RGB or RGBA)"


def _check_complete(path: Path, head: bytes, data: bytes) -> None:
    if head.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" not in data[-32:]:
        raise InputError(f"{path}: truncated PNG (no IEND chunk); the file is incomplete")
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in data[-64:]:
        raise InputError(f"{path}: truncated JPEG (no end-of-image marker); the file is incomplete")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one capture as H×W (gray), H×W×3 (RGB) or H×W×4 (RGBA), uint8 or uint16.

    Raises
    ------
    InputError
        Missing, empty, truncated or undecodable file, or an extension that is not an image format (the message
        names the file and what is accepted).
    """
    p = Path(path)
    if p.suffix.lower() not in READ_EXTENSIONS:
        raise InputError(f"{p}: extension {p.suffix or '(none)'!r} is not supported; expected {_ACCEPTED}")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e
    if not data:
        raise InputError(f"{p}: empty file; expected {_ACCEPTED}")
    _check_complete(p, data[:8], data)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise InputError(f"{p}: not a readable image ({str(e).strip().splitlines()[-1]}); expected {_ACCEPTED}") from e
    if img is None or img.size == 0:
        raise InputError(f"{p}: not a readable image; expected {_ACCEPTED}")
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{p}: pixel type {img.dtype} is not supported; expected {_ACCEPTED}")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        elif img.shape[2] == 1:
            img = img[..., 0]
        else:
            raise InputError(f"{p}: {img.shape[2]} channels are not supported; expected {_ACCEPTED}")
    return np.ascontiguousarray(img)


def write_image_atomic(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write ``image`` (RGB/RGBA order) to ``path`` in the format its extension names, atomically.

    16-bit images cannot be JPEG; they are refused for ``.jpg`` rather than silently reduced to 8 bits.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in READ_EXTENSIONS:
        raise InputError(f"{p}: cannot write extension {ext!r}; expected one of {', '.join(READ_EXTENSIONS)}")
    if image.dtype == np.uint16 and ext in (".jpg", ".jpeg", ".bmp"):
        raise InputError(f"{p}: a 16-bit image cannot be stored as {ext}; use .png or .tif")
    out = image
    if out.ndim == 3 and out.shape[2] == 3:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    elif out.ndim == 3 and out.shape[2] == 4:
        out = cv2.cvtColor(out, cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_JPEG_QUALITY, 97] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(out), params)
    if not ok:
        raise InputError(f"{p}: OpenCV could not encode a {image.dtype} {image.shape} image as {ext}")
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
