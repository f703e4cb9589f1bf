"""The built-in ``similarity`` plugin: PanopticML's counterpart without heavy dependencies.

Vector types (created in ``_start``, source ``similarity``):

* ``{"model": "phash64"}``: the image's 64-bit perceptual hash (the store's
  ``phash``, DCT of a 32x32 grayscale, see :mod:`fluxgym_coach.imaging`) as
  64 floats 0/1. Compared by Hamming distance (0..64 differing bits).
* ``{"model": "colour_layout_v1"}``: a 120-float embedding computed with
  numpy from a 32x32 RGB copy: a 4x4 layout grid of mean YCbCr (48 values,
  centred) and an 8x3x3 HSV colour histogram (72 values, square-rooted),
  each block L2-normalised, then the whole. Compared by cosine similarity.

Actions:

* ``compute_vectors`` (hook ``vector``): both vectors for the selection.
* ``find_similar`` (hook ``similar``): rank every other image against the
  selection; Hamming distance (lower is better) for ``phash64``, cosine of
  the mean query vector (higher is better) for the colour embedding.
* ``cluster`` (hook ``group``): k-means (numpy, k-means++ seeding) on the
  colour embedding; FAISS k-means when ``faiss`` is installed;
  ``nb_clusters = -1`` uses HDBSCAN (``sklearn`` >= 1.3 or ``hdbscan``) when
  installed. Group score: mean distance to the centre (lower is better).
* ``near_duplicates`` (hook ``group``): images whose pHashes differ by at
  most ``threshold`` bits, joined **transitively** (union-find over every
  pair, unlike PanopticML's greedy, non-transitive grouping), plus exact
  duplicates (identical xxh3-128 digests). The default threshold, 10 bits,
  is imagededup's default for pHash.

Optional CLIP vectors (extra ``clip``: transformers + torch): set the
plugin parameter ``clip_model`` to the folder of a Hugging Face CLIP model
already on disk (e.g. ``openai/clip-vit-base-patch32`` saved with
``save_pretrained``). A third vector type ``{"model": "clip", "path": ...}``
is then registered and computed with the others (L2-normalised image
features, compared by cosine). Nothing is ever downloaded
(``local_files_only=True``); a missing package or folder is an error
notification naming it.

The pure functions (:func:`near_duplicate_groups`, :func:`kmeans`,
:func:`colour_layout_embedding`, ...) are used by the Panoptic adapter and
``bench/similarity.py`` too.
"""

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from ... import imaging
from ...audit.duplicates import (DEFAULT_THRESHOLD, exact_duplicate_groups, hamming_matrix, hex_to_uint64,
                                 near_duplicate_groups, near_duplicate_pairs, popcount64)
from ..models import (ActionContext, ActionResult, DeleteFolderConfirm, Group, Instance, Notif,
                      NotifFunction, NotifType, OwnVectorType, Score, ScoreList, Vector, VectorType)
from ..plugin import APlugin
from ..tasks import Task

PHASH_MODEL = "phash64"
COLOUR_MODEL = "colour_layout_v1"
CLIP_MODEL = "clip"

# -- pure functions ---------------------------------------------------------------


def phash_bits(phash: str) -> np.ndarray:
    """A 16-hex pHash as 64 float32 bits (most significant first)."""
    value = int(phash, 16)
    return np.array([(value >> (63 - i)) & 1 for i in range(64)], dtype=np.float32)


def bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`phash_bits` for a ``(n, 64)`` array -> uint64 ``(n,)``."""
    b = (np.asarray(bits).reshape(-1, 64) > 0.5).astype(np.uint64)
    weights = np.left_shift(np.uint64(1), np.arange(63, -1, -1, dtype=np.uint64))
    return (b * weights).sum(axis=1, dtype=np.uint64)


def colour_layout_embedding(source: str | Path | bytes | Image.Image) -> np.ndarray:
    """The ``colour_layout_v1`` embedding (120 float32, unit length) of an image
    (path, bytes or PIL image). Raises ImageReadError for unreadable files."""
    im = source if isinstance(source, Image.Image) else imaging.load_upright_rgb(source, max_side=256)
    small = im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    ycc = np.asarray(small.convert("YCbCr"), dtype=np.float32) / 255.0
    layout = ycc.reshape(4, 8, 4, 8, 3).mean(axis=(1, 3)).ravel() - 0.5
    hsv = np.asarray(small.convert("HSV"), dtype=np.int32)
    hue = hsv[..., 0] * 8 // 256
    sat = hsv[..., 1] * 3 // 256
    val = hsv[..., 2] * 3 // 256
    hist = np.bincount((hue * 9 + sat * 3 + val).ravel(), minlength=72).astype(np.float32)
    hist = np.sqrt(hist / hist.sum())

    def unit(v: np.ndarray) -> np.ndarray:
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    return unit(np.concatenate([unit(layout), unit(hist)])).astype(np.float32)


class ClipEmbedder:
    """Image features of a local Hugging Face CLIP model (``transformers``), L2-normalised.

    ``model_dir`` is a folder holding ``config.json`` and the weights. The
    model loads on first use, on CUDA when available, else the CPU. Raises
    ImportError (naming the ``clip`` extra) when transformers/torch are
    missing, FileNotFoundError when the folder does not exist.
    """

    def __init__(self, model_dir: str, batch_size: int = 16):
        self.model_dir = model_dir
        self.batch_size = batch_size
        self._model = None
        self._processor = None
        self._device = "cpu"
        self._lock = threading.Lock()

    def _load(self) -> None:
        if not Path(self.model_dir).is_dir():
            raise FileNotFoundError(f"CLIP model folder {self.model_dir} does not exist; set clip_model to a "
                                    f"folder saved with save_pretrained (nothing is downloaded)")
        try:
            import torch
            from transformers import CLIPModel, CLIPProcessor
        except ImportError as exc:
            raise ImportError(f"CLIP vectors need transformers and torch: pip install 'fluxgym-coach[clip]' ({exc})") from exc
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = CLIPModel.from_pretrained(self.model_dir, local_files_only=True).to(self._device).eval()
        self._processor = CLIPProcessor.from_pretrained(self.model_dir, local_files_only=True)

    def embed(self, paths: Sequence[str]) -> list[np.ndarray]:
        """One float32 unit vector per image path, in order (blocking; call in a thread)."""
        with self._lock:
            if self._model is None:
                self._load()
            import torch
            out: list[np.ndarray] = []
            for start in range(0, len(paths), self.batch_size):
                images = [imaging.load_upright_rgb(p, max_side=448) for p in paths[start:start + self.batch_size]]
                inputs = self._processor(images=images, return_tensors="pt").to(self._device)
                with torch.no_grad():
                    feats = self._model.get_image_features(**inputs)
                feats = torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy().astype(np.float32)
                out.extend(feats)
            return out


def kmeans(x: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding: (labels ``(n,)``, centres ``(k, d)``).
    ``k`` is clipped to the number of points. Deterministic for a given ``seed``."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        idx = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centres.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(axis=1))
    c = np.array(centres)
    labels = np.zeros(n, dtype=np.int64)
    for it in range(iters):
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return labels, c


def _faiss_kmeans(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss  # optional
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=0)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    _, labels = km.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return labels.ravel().astype(np.int64), km.centroids.astype(np.float64)


def _hdbscan(x: np.ndarray, min_cluster_size: int = 5) -> np.ndarray:
    try:
        from sklearn.cluster import HDBSCAN
        return HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(x)
    except ImportError:
        import hdbscan  # optional
        return hdbscan.HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(x)


def optional_backends() -> dict[str, bool]:
    """Which optional clustering backends are importable (faiss, sklearn, hdbscan)."""
    return {name: importlib.util.find_spec(name) is not None for name in ("faiss", "sklearn", "hdbscan")}


# -- the plugin ---------------------------------------------------------------------


class SimilarityParams(BaseModel):
    """Settings of the similarity plugin.
    @compute_on_import: compute the vectors of new images after each scan
    @near_duplicate_threshold: default pHash distance (bits) for near duplicates
    @clip_model: folder of a local CLIP model for a third vector type (empty = off; needs the clip extra)
    """

    compute_on_import: bool = True
    near_duplicate_threshold: int = Field(DEFAULT_THRESHOLD, ge=0, le=64)
    clip_model: str = ""


class VectorKind(Enum):
    """Which vector ``find_similar`` and ``cluster`` compare."""

    phash = PHASH_MODEL
    colour = COLOUR_MODEL
    clip = CLIP_MODEL


class ComputeVectorsTask(Task):
    """Computes both vectors of one image (queued by the scan events)."""

    def __init__(self, plugin: "SimilarityPlugin", instance: Instance):
        super().__init__(priority=False)
        self.plugin = plugin
        self.instance = instance
        self.name = "Similarity vectors"
        self.key = "similarity.compute_vectors"

    async def run(self) -> int:
        """Compute and store the vectors; returns how many were written."""
        return await self.plugin.compute_for([self.instance], self.run_async)

    async def run_if_last(self) -> None:
        """Drop the cached matrices so the next search sees the new vectors."""
        self.plugin.matrix_cache.clear()


class SimilarityPlugin(APlugin):
    """Near duplicates, similar images and clusters from perceptual hashes and a colour/layout embedding."""

    def __init__(self, project, plugin_path: str, name: str):
        super().__init__(project=project, plugin_path=plugin_path, name=name)
        self.params = SimilarityParams()
        self.matrix_cache: dict[int, tuple[list[str], np.ndarray]] = {}
        self.clip: ClipEmbedder | None = None
        self.add_action_easy(self.compute_vectors, ["vector"])
        self.find_similar_description = self.add_action_easy(self.find_similar, ["similar"])
        self.add_action_easy(self.cluster, ["group"])
        self.add_action_easy(self.near_duplicates, ["group"])
        self.project.on_instance_import(self._on_import)
        self.project.on_folder_delete(self._on_folder_delete)

    async def _start(self) -> None:
        for model in (PHASH_MODEL, COLOUR_MODEL):
            if not any(vt.params.get("model") == model for vt in self.vector_types):
                vec_type = self.project.create_vector_type({"model": model})
                await self.project.add_vector_type(vec_type)
        if self.params.clip_model:
            path = str(Path(self.params.clip_model).expanduser())
            self.clip = ClipEmbedder(path)
            if self.clip_type() is None:
                await self.project.add_vector_type(self.project.create_vector_type({"model": CLIP_MODEL, "path": path}))

    def clip_type(self) -> VectorType | None:
        """The CLIP vector type of the configured ``clip_model``, or None."""
        if self.clip is None:
            return None
        for vt in self.vector_types:
            if vt.params.get("model") == CLIP_MODEL and vt.params.get("path") == self.clip.model_dir:
                return vt
        return None

    def vector_type(self, kind: VectorKind | str) -> VectorType:
        """This plugin's vector type of ``kind`` (``phash64``, ``colour_layout_v1`` or ``clip``)."""
        model = kind.value if isinstance(kind, VectorKind) else kind
        if model == CLIP_MODEL:
            clip_t = self.clip_type()
            if clip_t is None:
                raise LookupError("no CLIP vectors: set the similarity plugin's clip_model parameter")
            return clip_t
        for vt in self.vector_types:
            if vt.params.get("model") == model:
                return vt
        raise LookupError(f"vector type {model!r} is not registered; was the plugin started?")

    # -- events ---------------------------------------------------------------------
    async def _on_import(self, instance: Instance) -> None:
        if self.params.compute_on_import and instance.sha1:
            self.project.add_task(ComputeVectorsTask(self, instance))

    async def _on_folder_delete(self, confirm: DeleteFolderConfirm) -> None:
        live = {i.sha1 for i in await self.project.get_instances()}
        for vt in self.vector_types:
            stale = [v.sha1 for v in await self.project.get_vectors(vt.id) if v.sha1 not in live]
            if stale:
                await self.project.delete_vectors(vt.id, stale)
        self.matrix_cache.clear()

    # -- vectors ----------------------------------------------------------------------
    async def compute_for(self, instances: list[Instance], run_async=None) -> int:
        """Compute missing vectors of ``instances`` (unique by sha1) in a thread; returns
        the number of vectors written. Unreadable images are skipped."""
        run_async = run_async or self.project.run_async
        phash_t, colour_t = self.vector_type(VectorKind.phash), self.vector_type(VectorKind.colour)
        unique = [i for i in {i.sha1: i for i in instances if i.sha1}.values()]
        have_p = {v.sha1 for v in await self.project.get_vectors(phash_t.id, [i.sha1 for i in unique])}
        have_c = {v.sha1 for v in await self.project.get_vectors(colour_t.id, [i.sha1 for i in unique])}
        todo_c = [i for i in unique if i.sha1 not in have_c]

        def embed_all() -> list[tuple[str, np.ndarray | None]]:
            out = []
            for inst in todo_c:
                try:
                    out.append((inst.sha1, colour_layout_embedding(inst.url)))
                except (imaging.ImageReadError, OSError):
                    out.append((inst.sha1, None))
            return out

        vectors = [Vector(phash_t.id, i.sha1, phash_bits(i.ahash)) for i in unique
                   if i.sha1 not in have_p and i.ahash]
        vectors += [Vector(colour_t.id, s, v) for s, v in await run_async(embed_all) if v is not None]
        await self.project.add_vectors(vectors)
        written = len(vectors)
        clip_t = self.clip_type()
        if clip_t is not None and self.clip is not None:
            have = {v.sha1 for v in await self.project.get_vectors(clip_t.id, [i.sha1 for i in unique])}
            todo = [i for i in unique if i.sha1 not in have]
            if todo:
                feats = await run_async(self.clip.embed, [i.url for i in todo])
                await self.project.add_vectors([Vector(clip_t.id, i.sha1, f) for i, f in zip(todo, feats)])
                written += len(todo)
        if written:
            self.matrix_cache.clear()
        return written

    async def _matrix(self, vt: VectorType) -> tuple[list[str], np.ndarray]:
        cached = self.matrix_cache.get(vt.id)
        if cached is None:
            vecs = await self.project.get_vectors(vt.id)
            dim = {PHASH_MODEL: 64, COLOUR_MODEL: 120}.get(vt.params.get("model"), 0)
            mat = np.stack([v.data for v in vecs]) if vecs else np.zeros((0, dim), np.float32)
            cached = self.matrix_cache[vt.id] = ([v.sha1 for v in vecs], mat)
        return cached

    async def _instances(self, ctx: ActionContext) -> list[Instance]:
        return await self.project.get_instances(ids=ctx.instance_ids)

    def _kind(self, vector_type: VectorType | None) -> VectorKind:
        if vector_type is None:
            return VectorKind.colour
        return VectorKind(vector_type.params.get("model"))

    # -- actions ----------------------------------------------------------------------
    async def compute_vectors(self, context: ActionContext) -> ActionResult:
        """Compute the pHash and colour/layout vectors of the selected images (all when none)."""
        instances = await self._instances(context)
        written = await self.compute_for(instances)
        return ActionResult(notifs=[Notif(NotifType.INFO, name="compute_vectors",
                                          message=f"{written} vectors computed for {len(instances)} images")],
                            value=written)

    async def find_similar(self, context: ActionContext, vector_type: OwnVectorType | None = None,
                           count: int = 20) -> ActionResult:
        """Rank the other images by similarity to the selection.
        @vector_type: phash64 (Hamming distance), colour_layout_v1 or clip (cosine); default colour
        @count: how many images to return (0 = all)
        """
        if not context.instance_ids:
            raise ValueError("select at least one image to search for similar ones")
        kind = self._kind(vector_type)
        everyone = await self.project.get_instances()
        await self.compute_for(everyone)
        query = {i.sha1 for i in everyone if i.id in set(context.instance_ids)}
        candidates = [i for i in everyone if i.sha1 not in query and i.sha1]
        sha1s, mat = await self._matrix(self.vector_type(kind))
        row = {s: n for n, s in enumerate(sha1s)}
        q = mat[[row[s] for s in query if s in row]]
        c_rows = [row.get(i.sha1) for i in candidates]
        keep = [(inst, r) for inst, r in zip(candidates, c_rows) if r is not None]
        if not keep or not len(q):
            return ActionResult(groups=[], notifs=[Notif(NotifType.WARNING, "find_similar", "no vectors to compare")])
        cand = mat[[r for _, r in keep]]
        if kind is VectorKind.phash:
            dist = hamming_matrix(bits_to_uint64(cand), bits_to_uint64(q)).min(axis=1).astype(float)
            order = np.argsort(dist, kind="stable")
            values, best_high, lo, hi, desc = dist, False, 0.0, 64.0, "pHash distance in bits (lower is more similar)"
        else:
            centre = q.mean(axis=0)
            centre /= max(float(np.linalg.norm(centre)), 1e-12)
            values = np.round(cand @ centre, 4)
            order = np.argsort(-values, kind="stable")
            best_high, lo, hi, desc = True, -1.0, 1.0, "cosine similarity (higher is more similar)"
        if count > 0:
            order = order[:count]
        ids = [keep[k][0].id for k in order]
        scores = ScoreList([float(values[k]) for k in order], lo, hi, desc, max_is_best=best_high)
        return ActionResult(groups=[Group(ids=ids, scores=scores, name=f"Similar ({kind.value})")])

    async def cluster(self, context: ActionContext, nb_clusters: int = 10,
                      vector_type: OwnVectorType | None = None) -> ActionResult:
        """Group the selected images (all when none) into clusters.
        @nb_clusters: number of clusters; -1 = HDBSCAN (when sklearn or hdbscan is installed)
        @vector_type: the vectors to cluster (default colour_layout_v1; clip when configured)
        """
        kind = self._kind(vector_type)
        instances = [i for i in await self._instances(context) if i.sha1]
        await self.compute_for(instances)
        sha1s, mat = await self._matrix(self.vector_type(kind))
        row = {s: n for n, s in enumerate(sha1s)}
        insts = [i for i in instances if i.sha1 in row]
        if not insts:
            return ActionResult(notifs=[Notif(NotifType.WARNING, "cluster", "no image with vectors to cluster")])
        x = mat[[row[i.sha1] for i in insts]].astype(np.float64)
        backends = optional_backends()
        notifs = []
        if nb_clusters == -1:
            if not (backends["sklearn"] or backends["hdbscan"]):
                raise RuntimeError("nb_clusters=-1 needs HDBSCAN: pip install scikit-learn (or hdbscan)")
            labels = await self.project.run_async(_hdbscan, x)
            method = "hdbscan"
        elif backends["faiss"] and len(x) >= nb_clusters * 39:
            labels, _ = await self.project.run_async(_faiss_kmeans, x, nb_clusters)
            method = "faiss k-means"
        else:
            labels, _ = await self.project.run_async(kmeans, x, nb_clusters)
            method = "k-means"
        groups = []
        for lab in sorted(set(labels.tolist())):
            members = np.nonzero(labels == lab)[0]
            centre = x[members].mean(axis=0)
            dist = np.linalg.norm(x[members] - centre, axis=1)
            order = members[np.argsort(dist, kind="stable")]
            d_sorted = np.sort(dist)
            name = "Noise (no cluster)" if lab == -1 else f"Cluster {len(groups) + 1} ({len(members)} images)"
            groups.append(Group(ids=[insts[k].id for k in order],
                                scores=ScoreList([round(float(d), 4) for d in d_sorted], 0.0, 2.0,
                                                 "distance to the cluster centre", max_is_best=False),
                                score=Score(round(float(dist.mean()), 4), 0.0, 2.0,
                                            "mean distance to the centre", max_is_best=False),
                                name=name))
        groups.sort(key=lambda g: g.score.value if g.score else 0.0)
        notifs.append(Notif(NotifType.INFO, "cluster", f"{len(groups)} clusters of {len(insts)} images ({method})"))
        return ActionResult(groups=groups, notifs=notifs)

    async def near_duplicates(self, context: ActionContext, threshold: int = -1) -> ActionResult:
        """Find near-duplicate images (pHash, transitive) and exact duplicates (same bytes).
        @threshold: largest pHash distance in bits joining two images (-1 = the plugin's setting, 10 by default)
        """
        if threshold < 0:
            threshold = self.params.near_duplicate_threshold
        instances = [i for i in await self._instances(context) if i.sha1]
        groups = []
        for idxs in exact_duplicate_groups([i.sha1 for i in instances]):
            groups.append(Group(ids=[instances[k].id for k in idxs],
                                scores=ScoreList([0.0] * len(idxs), 0.0, 64.0, "pHash distance to the first image",
                                                 max_is_best=False),
                                score=Score(0.0, 0.0, 64.0, "largest pHash distance in the group", max_is_best=False),
                                name=f"Exact duplicates: {', '.join(instances[k].relpath for k in idxs)}"))
        unique = list({i.sha1: i for i in instances if i.ahash}.values())
        hashes = hex_to_uint64([i.ahash for i in unique])
        near = await asyncio.to_thread(near_duplicate_groups, hashes, threshold)
        for idxs in near:
            sub = hashes[idxs]
            d = hamming_matrix(sub, sub)
            first = unique[idxs[0]]
            same = [i for i in instances if i.sha1 in {unique[k].sha1 for k in idxs}]
            by_sha = {unique[k].sha1: int(d[0, n]) for n, k in enumerate(idxs)}
            same.sort(key=lambda i: (by_sha[i.sha1], i.relpath))
            groups.append(Group(ids=[i.id for i in same],
                                scores=ScoreList([float(by_sha[i.sha1]) for i in same], 0.0, 64.0,
                                                 f"pHash distance to {first.relpath}", max_is_best=False),
                                score=Score(float(d.max()), 0.0, 64.0, "largest pHash distance in the group",
                                            max_is_best=False),
                                name=f"Near duplicates of {first.relpath}"))
        n_images = sum(len(g.ids or []) for g in groups)
        notif = Notif(NotifType.INFO if groups else NotifType.DEBUG, "near_duplicates",
                      f"{len(groups)} groups, {n_images} images (threshold {threshold} bits)",
                      data={"threshold": threshold, "images": len(instances)})
        if groups:
            notif.functions = [NotifFunction(self.find_similar_description.id,
                                             ActionContext(instance_ids=[groups[0].ids[0]]),
                                             "Find images similar to the first duplicate")]
        return ActionResult(groups=groups, notifs=[notif], value=len(groups))


plugin_class = SimilarityPlugin

__all__ = ["CLIP_MODEL", "COLOUR_MODEL", "ClipEmbedder", "DEFAULT_THRESHOLD", "PHASH_MODEL", "SimilarityParams", "SimilarityPlugin",
           "VectorKind", "bits_to_uint64", "colour_layout_embedding", "exact_duplicate_groups",
           "hamming_matrix", "hex_to_uint64", "kmeans", "near_duplicate_groups", "near_duplicate_pairs",
           "optional_backends", "phash_bits", "plugin_class", "popcount64"]
