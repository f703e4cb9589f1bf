"""Face boxes for subject-first framing, from OpenCV's bundled cascades.

The detector is OpenCV's Viola-Jones cascade classifier
(``cv2.CascadeClassifier``) with the ``haarcascade_frontalface_alt2.xml``
model (frontal faces only: the profile cascade, run both ways, cost 5-8x more
on photos without a face); the models that ship inside the
``opencv-python-headless`` wheel (``cv2.data.haarcascades``): nothing is
downloaded. OpenCV 5 no longer has the cascade classifier in its main module,
so the dependency is pinned below 5; without a usable ``cv2``,
:func:`detector_available` is False and framing falls back to saliency.

Detection runs on a grey copy of at most :data:`DETECT_AREA` pixels
(histogram-equalised), so the cost per image does not grow with its size,
with :data:`SCALE_FACTOR` between pyramid levels, :data:`MIN_NEIGHBORS` and
faces from :data:`MIN_FACE` pixels of that copy (the cascade's own 20-px
window) up. ``bench/buckets.py`` measures time and recall against the
previous parameters (448x448 copy, 1.15, 4, 6 % of the short side) in the
same run; figures in ``docs/performance.md``. Boxes are stored per image in the dataset's store (table
``faces``, keyed by relpath and digest) as fractions of the upright image
size, so they apply to the original and to any enhanced variant alike.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..store import Store, register_schema

if TYPE_CHECKING:  # pragma: no cover
    import cv2 as _cv2

#: Names the detector and its parameters: boxes stored under another name are detected again.
DETECTOR = "opencv-haar-frontalface-alt2/512-1.25-3"
#: Detection runs on a copy of at most this many pixels (512x512).
DETECT_AREA = 512 * 512
#: Size ratio between two levels of the cascade's image pyramid (OpenCV ``scaleFactor``).
SCALE_FACTOR = 1.25
#: Overlapping hits a face needs (OpenCV ``minNeighbors``).
MIN_NEIGHBORS = 3
#: Smallest face searched for, in pixels of the detection copy (the cascade's window).
MIN_FACE = 20

register_schema(
    "faces",
    [
        """
        CREATE TABLE faces (
            relpath     TEXT PRIMARY KEY,
            digest      TEXT NOT NULL,
            detector    TEXT NOT NULL,
            boxes       TEXT NOT NULL,
            detected_at REAL NOT NULL
        );
        """,
    ],
)

_local = threading.local()


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face as fractions of the image size: left, top, right, bottom in [0, 1]."""

    left: float
    top: float
    right: float
    bottom: float

    def pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box in pixels of a ``width`` x ``height`` image."""
        return (self.left * width, self.top * height, self.right * width, self.bottom * height)


_import_lock = threading.Lock()


def _cv2():
    """``cv2`` with its ``cv2.data`` submodule bound, or None. Imported under a lock:
    OpenCV's package bootstrap swaps the module in ``sys.modules`` while it runs,
    and a second thread importing it meanwhile saw a ``cv2`` without ``data``."""
    with _import_lock:
        try:
            import cv2
            import cv2.data  # noqa: F401
        except ImportError:
            return None
    return cv2 if hasattr(cv2, "CascadeClassifier") else None


def detector_available() -> bool:
    """True when OpenCV with its cascade classifier and bundled models is installed."""
    cv2 = _cv2()
    if cv2 is None:
        return False
    from pathlib import Path
    return (Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml").is_file()


def _cascades() -> list["_cv2.CascadeClassifier"]:
    """One set of classifiers per thread (they are not thread-safe)."""
    found = getattr(_local, "cascades", None)
    if found is None:
        cv2 = _cv2()
        cv2.setNumThreads(1)  # callers parallelise over images; OpenCV's own threads would oversubscribe
        base = cv2.data.haarcascades
        found = [cv2.CascadeClassifier(base + "haarcascade_frontalface_alt2.xml")]
        _local.cascades = found
    return found


def _merge(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Drop boxes mostly inside a larger one (the same face found at two scales)."""
    boxes = sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    kept: list[tuple[float, float, float, float]] = []
    for b in boxes:
        area = (b[2] - b[0]) * (b[3] - b[1])
        inside = False
        for k in kept:
            iw = max(0.0, min(b[2], k[2]) - max(b[0], k[0]))
            ih = max(0.0, min(b[3], k[3]) - max(b[1], k[1]))
            if iw * ih > 0.5 * area:
                inside = True
                break
        if not inside:
            kept.append(b)
    return kept


def detect_faces(im: Image.Image, *, area: int = DETECT_AREA, scale_factor: float = SCALE_FACTOR,
                 min_neighbors: int = MIN_NEIGHBORS, min_face: int = MIN_FACE,
                 min_face_share: float = 0.0) -> list[FaceBox]:
    """Faces in the upright image ``im`` (any mode), as :class:`FaceBox` fractions.

    The keywords are the detection parameters (defaults: the module constants;
    ``min_face_share`` raises the smallest face to that share of the copy's
    short side; the bench passes the previous parameters as its baseline).
    Raises RuntimeError when no detector is installed (see :func:`detector_available`).
    """
    cv2 = _cv2()
    if cv2 is None:
        raise RuntimeError("face detection needs opencv-python-headless<5: pip install "
                           "'opencv-python-headless>=4.8,<5'")
    f = min(1.0, (area / (im.width * im.height)) ** 0.5)
    grey = im.convert("L")
    if f < 1.0:
        grey = grey.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BILINEAR,
                           reducing_gap=2.0)
    arr = cv2.equalizeHist(np.asarray(grey, dtype=np.uint8))
    gw, gh = grey.size
    side = max(min_face, int(min(gw, gh) * min_face_share))
    raw: list[tuple[float, float, float, float]] = []
    (frontal,) = _cascades()
    for x, y, w, h in frontal.detectMultiScale(arr, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                               minSize=(side, side)):
        raw.append((x, y, x + w, y + h))
    return [FaceBox(float(l) / gw, float(t) / gh, float(r) / gw, float(b) / gh) for l, t, r, b in _merge(raw)]


def stored_faces(store: Store, relpath: str, digest: str | None) -> list[FaceBox] | None:
    """The boxes stored for ``relpath`` at ``digest`` by this detector, or None."""
    store.ensure_schema("faces")
    rows = store.execute("SELECT digest, detector, boxes FROM faces WHERE relpath = ?", (relpath,))
    if not rows or rows[0]["digest"] != (digest or "") or rows[0]["detector"] != DETECTOR:
        return None
    return [FaceBox(*b) for b in json.loads(rows[0]["boxes"])]


def stored_faces_all(store: Store) -> dict[str, tuple[str, list[FaceBox]]]:
    """Every box set this detector stored: ``{relpath: (digest, boxes)}`` in one query
    (the audit reads all of them at once; compare the digest with the image's own)."""
    store.ensure_schema("faces")
    rows = store.execute("SELECT relpath, digest, boxes FROM faces WHERE detector = ?", (DETECTOR,))
    return {r["relpath"]: (r["digest"], [FaceBox(*b) for b in json.loads(r["boxes"])]) for r in rows}


def save_faces(store: Store, relpath: str, digest: str | None, boxes: list[FaceBox]) -> None:
    """Store ``boxes`` for ``relpath`` at ``digest`` (replacing older ones)."""
    store.ensure_schema("faces")
    data = json.dumps([[b.left, b.top, b.right, b.bottom] for b in boxes])
    store.execute("INSERT OR REPLACE INTO faces (relpath, digest, detector, boxes, detected_at) "
                  "VALUES (?, ?, ?, ?, ?)", (relpath, digest or "", DETECTOR, data, time.time()))


def faces_for(store: Store | None, relpath: str, digest: str | None, im: Image.Image) -> list[FaceBox]:
    """Stored faces for the image, else detected on ``im`` and stored.

    Returns [] when no detector is installed (nothing is stored then)."""
    if store is not None:
        got = stored_faces(store, relpath, digest)
        if got is not None:
            return got
    if _cv2() is None:
        return []
    boxes = detect_faces(im)
    if store is not None:
        save_faces(store, relpath, digest, boxes)
    return boxes
