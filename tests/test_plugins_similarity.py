"""The built-in similarity plugin: near duplicates (real stereo pair), exact duplicates, similar, clusters."""

import itertools
import random
import shutil

import imagehash
import numpy as np
import pytest

from fluxgym_coach.plugins import ActionContext, NotifType, Project, load_plugins, scan_and_notify
from fluxgym_coach.plugins.builtin.similarity import (COLOUR_MODEL, PHASH_MODEL, bits_to_uint64,
                                                      colour_layout_embedding, exact_duplicate_groups,
                                                      hex_to_uint64, kmeans, near_duplicate_groups,
                                                      near_duplicate_pairs, phash_bits)


@pytest.fixture
async def real_project(real_dataset):
    project = Project.open(real_dataset)
    assert await load_plugins(project) == {}
    await scan_and_notify(project)
    assert await project.task_queue.join() == []
    yield project
    project.close()


def _rel(project, ids):
    by = {i.id: i.relpath for i in project.instances()}
    return [by[i] for i in ids]


async def test_near_duplicates_find_the_stereo_pair_only(real_project):
    res = await real_project.call_action("similarity.near_duplicates")
    assert [sorted(_rel(real_project, g.ids)) for g in res.groups] == [["motorcycle_left.png",
                                                                       "motorcycle_right.png"]]
    g = res.groups[0]
    assert g.scores.max_is_best is False and g.scores.values[0] == 0 and 0 < g.scores.values[1] <= 10
    assert g.score.value == g.scores.values[1]
    assert res.notifs[0].functions[0].function == "similarity.find_similar"
    # with a threshold of 0 bits even the stereo pair is apart
    assert (await real_project.call_action("similarity.near_duplicates", threshold="0")).groups == []


async def test_exact_duplicates_by_digest(plugin_project):
    root = plugin_project.base_path
    shutil.copy(root / "coffee.png", root / "coffee_copy.png")
    assert await load_plugins(plugin_project) == {}
    await scan_and_notify(plugin_project)
    res = await plugin_project.call_action("similarity.near_duplicates")
    exact = [g for g in res.groups if g.name.startswith("Exact duplicates")]
    assert [sorted(_rel(plugin_project, g.ids)) for g in exact] == [["coffee.png", "coffee_copy.png"]]
    # copies are reported once, as exact duplicates; the examples hold no near duplicate
    assert len(res.groups) == 1 and res.groups[0].score.value == 0


def test_near_duplicate_groups_are_transitive():
    base = random.Random(3).getrandbits(64)
    h1 = base ^ 0b111111               # 6 bits from base
    h2 = h1 ^ (0b111111 << 20)         # 6 bits from h1, 12 from base
    far = base ^ ((1 << 64) - 1)       # 64 bits away
    hashes = np.array([base, far, h1, h2], dtype=np.uint64)
    assert near_duplicate_groups(hashes, 10) == [[0, 2, 3]]
    assert near_duplicate_groups(hashes, 5) == []
    assert near_duplicate_groups(hashes, 64) == [[0, 1, 2, 3]]


def test_near_duplicate_pairs_match_imagehash_pairwise():
    rng = random.Random(7)
    hexes = []
    for _ in range(60):
        h = rng.getrandbits(64)
        hexes.append(f"{h:016x}")
        if rng.random() < 0.3:  # a near copy
            flips = rng.sample(range(64), rng.randint(0, 12))
            hexes.append(f"{h ^ sum(1 << b for b in flips):016x}")
    ih = [imagehash.hex_to_hash(h) for h in hexes]
    expected = {(i, j, ih[i] - ih[j]) for i, j in itertools.combinations(range(len(hexes)), 2) if ih[i] - ih[j] <= 8}
    i, j, d = near_duplicate_pairs(hex_to_uint64(hexes), 8, block=16)
    assert set(zip(i.tolist(), j.tolist(), d.tolist())) == expected
    assert expected  # the data has near copies


def test_exact_groups_and_bit_helpers():
    assert exact_duplicate_groups(["a", "b", "a", None, None, "b", "c"]) == [[0, 2], [1, 5]]
    h = "8f373714acfcf4d0"
    bits = phash_bits(h)
    assert bits.shape == (64,) and bits.dtype == np.float32 and bits.sum() == bin(int(h, 16)).count("1")
    assert int(bits_to_uint64(bits)[0]) == int(h, 16)


def test_kmeans_separates_two_blobs():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.1, (20, 3)), rng.normal(5, 0.1, (15, 3))])
    labels, centres = kmeans(x, 2)
    assert len(set(labels[:20].tolist())) == 1 and len(set(labels[20:].tolist())) == 1
    assert labels[0] != labels[-1] and centres.shape == (2, 3)


def test_colour_embedding(real_images_dir):
    a = colour_layout_embedding(real_images_dir / "motorcycle_left.png")
    b = colour_layout_embedding(real_images_dir / "motorcycle_right.png")
    c = colour_layout_embedding(real_images_dir / "coins.png")
    assert a.shape == (120,) and a.dtype == np.float32 and abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) > float(a @ c)


async def test_vectors_computed_on_import(real_project):
    plugin = real_project.plugins["similarity"]
    sha1s = {i.sha1 for i in real_project.instances()}
    for model in (PHASH_MODEL, COLOUR_MODEL):
        vt = plugin.vector_type(model)
        assert {v.sha1 for v in real_project.vectors(vt.id)} == sha1s
    state = real_project.task_queue.states["similarity.compute_vectors"]
    assert state.total == len(sha1s) and state.failed == 0


async def test_find_similar_ranks_the_other_view_first(real_project):
    left = next(i for i in real_project.instances() if i.relpath == "motorcycle_left.png")
    for model in (None, PHASH_MODEL):
        inputs = {"count": "3"} if model is None else {"count": "3", "vector_type": model}
        res = await real_project.call_action("similarity.find_similar",
                                             ActionContext(instance_ids=[left.id], ui_inputs=inputs))
        (g,) = res.groups
        assert _rel(real_project, g.ids)[0] == "motorcycle_right.png" and len(g.ids) == 3
        assert left.id not in g.ids
        vals = g.scores.values
        assert vals == (sorted(vals) if model == PHASH_MODEL else sorted(vals, reverse=True))
        assert g.scores.max_is_best is (model is None)
    res = await real_project.call_action("similarity.find_similar")
    assert res.has_error and "select at least one image" in res.notifs[0].message


async def test_cluster_covers_the_selection(real_project):
    res = await real_project.call_action("similarity.cluster", nb_clusters="4")
    ids = [i for g in res.groups for i in g.ids]
    assert sorted(ids) == sorted(i.id for i in real_project.instances())
    assert len(res.groups) == 4 and res.notifs[0].type is NotifType.INFO
    both = [g for g in res.groups if {"motorcycle_left.png", "motorcycle_right.png"} <= set(_rel(real_project, g.ids))]
    assert both, "the stereo pair lands in one cluster"
    scores = [g.score.value for g in res.groups]
    assert scores == sorted(scores) and all(g.score.max_is_best is False for g in res.groups)
    for g in res.groups:
        assert g.scores.values == sorted(g.scores.values)
    some = [i.id for i in real_project.instances()][:5]
    res = await real_project.call_action("similarity.cluster", ActionContext(instance_ids=some,
                                                                            ui_inputs={"nb_clusters": "2"}))
    assert sorted(i for g in res.groups for i in g.ids) == sorted(some)


async def test_clip_vectors_need_a_local_model(plugin_project, tmp_path):
    """With clip_model set, a third vector type is registered; a missing folder (or missing
    transformers/torch) is an error notification, and the other vectors are still stored."""
    plugin_project.set_plugin_data("similarity.base", {"clip_model": str(tmp_path / "no-such-model")})
    assert await load_plugins(plugin_project) == {}
    plugin = plugin_project.plugins["similarity"]
    assert plugin.clip_type().params == {"model": "clip", "path": str(tmp_path / "no-such-model")}
    res = await plugin_project.call_action("similarity.compute_vectors")
    assert res.has_error and "CLIP model folder" in res.notifs[0].message
    phash = plugin.vector_type(PHASH_MODEL)
    assert len(plugin_project.vectors(phash.id)) == 6


async def test_clip_vectors_with_a_real_model(plugin_project):
    """Runs only where a CLIP model is on disk (FLUXGYM_COACH_CLIP_MODEL) and the clip extra is installed."""
    import os
    model = os.environ.get("FLUXGYM_COACH_CLIP_MODEL")
    if not model:
        pytest.skip("set FLUXGYM_COACH_CLIP_MODEL to a local CLIP model folder to run this test")
    pytest.importorskip("transformers")
    plugin_project.set_plugin_data("similarity.base", {"clip_model": model})
    assert await load_plugins(plugin_project) == {}
    res = await plugin_project.call_action("similarity.compute_vectors")
    assert not res.has_error, res.notifs
    plugin = plugin_project.plugins["similarity"]
    vecs = plugin_project.vectors(plugin.clip_type().id)
    assert len(vecs) == 6 and all(abs(float(np.linalg.norm(v.data)) - 1) < 1e-3 for v in vecs)
    res = await plugin_project.call_action("similarity.cluster", nb_clusters="2", vector_type="clip")
    assert sum(len(g.ids) for g in res.groups) == 6


async def test_vectors_of_removed_images_are_dropped(real_project):
    plugin = real_project.plugins["similarity"]
    phash = plugin.vector_type(PHASH_MODEL)
    gone = next(i for i in real_project.instances() if i.relpath == "coins.png")
    (real_project.base_path / "coins.png").unlink()
    report = await scan_and_notify(real_project)
    assert report.removed == ["coins.png"]
    left = {v.sha1 for v in real_project.vectors(phash.id)}
    assert gone.sha1 not in left and left == {i.sha1 for i in real_project.instances()}


async def test_hdbscan_when_installed(real_project):
    pytest.importorskip("sklearn", reason="HDBSCAN needs scikit-learn (optional)")
    res = await real_project.call_action("similarity.cluster", nb_clusters="-1")
    assert not res.has_error, res.notifs
    assert "hdbscan" in res.notifs[0].message
    assert sorted(i for g in res.groups for i in g.ids) == sorted(i.id for i in real_project.instances())


def test_faiss_kmeans_when_installed():
    pytest.importorskip("faiss", reason="FAISS is optional")
    from fluxgym_coach.plugins.builtin.similarity import _faiss_kmeans
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(0, 0.05, (60, 8)), rng.normal(3, 0.05, (60, 8))])
    labels, centres = _faiss_kmeans(x, 2)
    assert centres.shape == (2, 8)
    assert len(set(labels[:60].tolist())) == 1 and len(set(labels[60:].tolist())) == 1 and labels[0] != labels[-1]
