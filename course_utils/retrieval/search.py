"""Nearest-neighbour search over embeddings: exact in torch, then FAISS's indexes.

The embeddings are L2-normalised, so the inner product is the cosine similarity and the
best match has the highest score. :func:`exact_search` compares a query with every
gallery vector; the FAISS indexes of :func:`build_index` trade a little recall for speed
or memory, and :func:`benchmark` measures that trade on synthetic galleries.

======== ==========================================================================
kind     idea
======== ==========================================================================
flat     every vector kept and compared (exact): FAISS's brute force, no training
ivf      k-means cells; a query scans only the ``nprobe`` cells nearest to it, so a
         neighbour in an unvisited cell is missed (approximate), ~ nprobe/nlist of the work
hnsw     a layered graph of near neighbours, walked greedily from the top layer; fast,
         no training, more memory (the links); ``ef_search`` candidates are kept per walk
pq       product quantisation: each vector cut into ``m`` pieces, each piece stored as
         the id of one of ``2**nbits`` centroids: ``m * nbits / 8`` bytes, scores approximate
ivfpq    IVF's cells with PQ codes of the residuals: both the scan and the memory shrink
======== ==========================================================================
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("flat", "ivf", "hnsw", "pq", "ivfpq")
#: the parameters each kind accepts (``train_size``: vectors its k-means is trained on)
PARAMS = {
    "flat": (),
    "ivf": ("nlist", "nprobe", "train_size"),
    "hnsw": ("M", "ef_construction", "ef_search"),
    "pq": ("m", "nbits", "train_size"),
    "ivfpq": ("nlist", "nprobe", "m", "nbits", "train_size"),
}
#: the most scores :func:`exact_search` holds at once (64 MiB of float32)
EXACT_CHUNK_SCORES = 2**24
#: FAISS computes distances without BLAS below ``faiss.cvar.distance_compute_blas_threshold``
#: queries (128,000 in FAISS 1.15); training k-means on fewer points that way was ~10x
#: slower on one thread (a PQ codebook on 10k vectors: 4.5 s against 0.4 s), so training
#: lowers it to this while it runs, and restores it
TRAIN_BLAS_THRESHOLD = 20


# ---- input --------------------------------------------------------------------------------


def _check_matrix(name: str, values) -> None:
    if not isinstance(values, Tensor | np.ndarray):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(values).__name__}")
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (rows, D) with at least one row, got shape {tuple(values.shape)}")


def _as_tensor(name: str, values) -> Tensor:
    """``values`` as a float32 torch tensor on its own device, checked 2-D and finite."""
    _check_matrix(name, values)
    tensor = torch.as_tensor(values).detach()
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return tensor


def _as_numpy(name: str, values) -> np.ndarray:
    """``values`` as a C-contiguous float32 numpy array on the CPU, what FAISS reads."""
    return np.ascontiguousarray(_as_tensor(name, values).cpu().numpy(), dtype=np.float32)


def _check_k(k, n: int, what: str = "N") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {what}={n}], got {k!r}")
    return k


def _check_same_width(queries, gallery_dim: int) -> None:
    if queries.shape[1] != gallery_dim:
        raise ValueError(f"queries have D={queries.shape[1]} but the gallery has D={gallery_dim}")


# ---- exact search --------------------------------------------------------------------------


def exact_search(queries: Tensor, gallery: Tensor, k: int, chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """The top ``k`` gallery rows of each query by inner product: ``(scores, indices)``.

    ``queries`` ``(Q, D)`` and ``gallery`` ``(N, D)`` are assumed L2-normalised, so the
    score is the cosine similarity. One matrix product and ``torch.topk`` per chunk of
    queries (``chunk_size`` rows, by default as many as keep ``chunk × N`` under 2**24
    scores), so a 100k gallery never needs a ``Q × N`` matrix at once. Returns float32
    scores ``(Q, k)``, best first, and int64 indices ``(Q, k)`` on the gallery's device.

    Used in chapter 11, "3. Exact search, then FAISS".
    """
    queries, gallery = _as_tensor("queries", queries), _as_tensor("gallery", gallery)
    if queries.device != gallery.device:
        raise ValueError(f"queries are on {queries.device} but the gallery is on {gallery.device}")
    _check_same_width(queries, gallery.shape[1])
    n = gallery.shape[0]
    _check_k(k, n)
    if chunk_size is None:
        chunk_size = max(1, EXACT_CHUNK_SCORES // n)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    scores, indices = [], []
    for chunk in queries.split(chunk_size):
        top = torch.topk(chunk @ gallery.T, k, dim=1)  # over (chunk, N) similarities
        scores.append(top.values)
        indices.append(top.indices)
    return torch.cat(scores), torch.cat(indices)


# ---- FAISS indexes ------------------------------------------------------------------------


def _largest_divisor_at_most(d: int, limit: int) -> int:
    return max(m for m in range(1, max(1, limit) + 1) if d % m == 0)


def default_params(kind: str, n: int, dim: int, **given) -> dict:
    """The parameters :func:`build_index` uses for ``kind`` on ``n`` vectors of width ``dim``.

    IVF: ``nlist`` ≈ 4·sqrt(n) cells, ``nprobe`` = 8 of them scanned, k-means trained on
    at most 64 vectors per cell. HNSW: ``M`` = 16 links per node, ``ef_construction`` =
    40, ``ef_search`` = 48. PQ: ``m`` = the largest divisor of ``dim`` up to ``dim / 4``
    (4 dimensions per byte-sized code), ``nbits`` = 8, trained on at most 64 vectors per
    centroid. Values in ``given`` are kept and the defaults that depend on them follow
    (``nprobe`` at most ``nlist``; ``train_size`` from ``nlist`` and ``nbits``). At 100k
    clustered vectors of width 64, IVF's defaults reach recall@10 ≥ 0.99 against exact
    search and HNSW's ≥ 0.95 (:func:`benchmark`).

    Used in chapter 11, "4. Approximate search at scale".
    """
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(KINDS)}")
    nlist = given.get("nlist", max(1, min(n, round(4 * math.sqrt(n)))))
    nbits = given.get("nbits", 8)
    m = _largest_divisor_at_most(dim, dim // 4)
    cells_sample, codebook_sample = min(n, 64 * nlist), min(n, 64 * 2**nbits)
    defaults = {
        "flat": {},
        "ivf": {"nlist": nlist, "nprobe": min(8, nlist), "train_size": cells_sample},
        "hnsw": {"M": 16, "ef_construction": 40, "ef_search": 48},
        "pq": {"m": m, "nbits": nbits, "train_size": codebook_sample},
        "ivfpq": {"nlist": nlist, "nprobe": min(8, nlist), "m": m, "nbits": nbits,
                  "train_size": max(cells_sample, codebook_sample)},
    }[kind]  # fmt: skip
    return {**defaults, **{name: value for name, value in given.items() if name in defaults}}


def _check_positive_ints(params: dict) -> None:
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_params(kind: str, n: int, dim: int, params: dict) -> dict:
    """``params`` over :func:`default_params`, each checked; a ValueError names the first wrong one."""
    unknown = sorted(set(params) - set(PARAMS[kind]))
    if unknown:
        allowed = ", ".join(PARAMS[kind]) or "none"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for a {kind!r} index; it takes: {allowed}")
    _check_positive_ints(params)
    settings = default_params(kind, n, dim, **params)
    limits = {
        "nlist": (n, "the number of vectors"),
        "nprobe": (settings.get("nlist"), "nlist"),
        "nbits": (16, "16"),
        "train_size": (n, "the number of vectors"),
    }
    for name, (limit, what) in limits.items():
        if name in settings and settings[name] > limit:
            raise ValueError(f"{name}={settings[name]} is more than {what} ({limit})")
    if "m" in settings and dim % settings["m"]:
        raise ValueError(f"m={settings['m']} must divide the vectors' width D={dim}")
    centroids = max(settings.get("nlist", 1), 2 ** settings.get("nbits", 0))
    if "train_size" in settings and settings["train_size"] < centroids:
        raise ValueError(f"train_size={settings['train_size']} is fewer than the {centroids} "
                         "centroids its k-means must learn")
    return settings


def _new_index(kind: str, dim: int, settings: dict):
    metric = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings["M"], metric)
        index.hnsw.efConstruction = settings["ef_construction"]
        index.hnsw.efSearch = settings["ef_search"]
        return index
    if kind == "pq":
        index = faiss.IndexPQ(dim, settings["m"], settings["nbits"], metric)
        index.pq.cp.min_points_per_centroid = 1  # the sample size is checked above
        return index
    quantizer = faiss.IndexFlatIP(dim)  # the cells' centroids, compared exactly
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, settings["nlist"], metric)
    else:
        index = faiss.IndexIVFPQ(quantizer, dim, settings["nlist"], settings["m"], settings["nbits"], metric)
        index.pq.cp.min_points_per_centroid = 1
    index.cp.min_points_per_centroid = 1
    index.nprobe = settings["nprobe"]
    return index


def build_index(vectors, kind: str = "flat", **params):
    """A FAISS index of inner products over ``vectors`` ``(N, D)`` (torch or numpy).

    ``kind`` is ``"flat"`` (exact, ``IndexFlatIP``), ``"ivf"`` (``IndexIVFFlat``:
    ``nlist``, ``nprobe``, ``train_size``), ``"hnsw"`` (``IndexHNSWFlat``: ``M``,
    ``ef_construction``, ``ef_search``), ``"pq"`` (``IndexPQ``: ``m``, ``nbits``,
    ``train_size``) or ``"ivfpq"`` (``IndexIVFPQ``: all of IVF's and PQ's); the module's
    docstring says what each approximates. Unset parameters take :func:`default_params`.
    A kind that must be trained learns its centroids on ``train_size`` of the vectors,
    a seeded random sample. The vectors are copied as float32 on the CPU.

    Used in chapter 11, "3. Exact search, then FAISS".
    """
    return _build(_as_numpy("vectors", vectors), kind, params)


def _build(data: np.ndarray, kind: str, params: dict):
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(KINDS)}")
    n, dim = data.shape
    settings = _check_params(kind, n, dim, params)
    index = _new_index(kind, dim, settings)
    if not index.is_trained:
        take = settings["train_size"]
        rows = np.sort(np.random.default_rng(0).choice(n, take, replace=False)) if take < n else slice(None)
        saved = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = TRAIN_BLAS_THRESHOLD
        try:
            index.train(data[rows])
        finally:
            faiss.cvar.distance_compute_blas_threshold = saved
    index.add(data)
    return index


def index_search(index, queries, k: int) -> tuple[Tensor, Tensor]:
    """Search a FAISS ``index`` for the top ``k`` of each query: ``(scores, indices)``.

    Returns CPU tensors, float32 scores ``(Q, k)`` best first and int64 indices
    ``(Q, k)``. Where an approximate index found fewer than ``k`` vectors (an IVF that
    scanned too few cells), FAISS's index is ``-1``; its score is set to ``-inf`` here.

    Used in chapter 11, "3. Exact search, then FAISS".
    """
    if not isinstance(index, faiss.Index):
        raise ValueError(f"index must be a FAISS index (see build_index), got {type(index).__name__}")
    if index.ntotal == 0:
        raise ValueError("index is empty: add vectors before searching it")
    data = _as_numpy("queries", queries)
    _check_same_width(data, index.d)
    _check_k(k, index.ntotal, what="the index's ntotal")
    scores, ids = index.search(data, k)
    scores, ids = torch.from_numpy(scores).float(), torch.from_numpy(ids).long()
    scores[ids < 0] = float("-inf")
    return scores, ids


def search(gallery, queries, k: int = 10, index: str = "exact", **params) -> tuple[Tensor, Tensor]:
    """The top ``k`` gallery embeddings of each query: ``(scores, indices)``, best first.

    ``gallery`` ``(N, E)`` and ``queries`` ``(Q, E)`` are L2-normalised embeddings (torch,
    on any device, or numpy). ``index="exact"`` searches with torch on the gallery's
    device (:func:`exact_search`) and answers there; any kind of :func:`build_index`
    (``"flat"``, ``"ivf"``, ``"hnsw"``, ``"pq"``, ``"ivfpq"``, with its ``**params``)
    builds that FAISS index on the CPU and answers with CPU tensors.

    Used in chapter 11, "3. Exact search, then FAISS".
    """
    if index != "exact" and index not in KINDS:
        raise ValueError(f"unknown index {index!r}; known: exact, {', '.join(KINDS)}")
    _check_matrix("gallery", gallery)
    _check_k(k, gallery.shape[0])
    if index == "exact":
        if params:
            raise ValueError(f"exact search takes no parameters, got {', '.join(sorted(params))}")
        gallery = _as_tensor("gallery", gallery)
        return exact_search(_as_tensor("queries", queries).to(gallery.device), gallery, k)
    return index_search(_build(_as_numpy("gallery", gallery), index, params), queries, k)


# ---- measuring the approximation ------------------------------------------------------------


def recall_against_exact(approx_indices, exact_indices) -> float:
    """The mean fraction of each query's exact top k that the approximate top k found.

    The "recall@k against exact" of ANN benchmarks: ``approx_indices`` ``(Q, k')`` from an
    index, ``exact_indices`` ``(Q, k)`` from :func:`exact_search`; ``-1`` (FAISS's
    "nothing found") counts as a miss. It measures the index, not the embeddings: 1.0
    means the index returns what exact search returns, right or wrong.

    Used in chapter 11, "4. Approximate search at scale".
    """
    approx = torch.as_tensor(approx_indices) if isinstance(approx_indices, np.ndarray) else approx_indices
    exact = torch.as_tensor(exact_indices) if isinstance(exact_indices, np.ndarray) else exact_indices
    for name, ids in (("approx_indices", approx), ("exact_indices", exact)):
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"{name} must be a 2-D integer tensor (Q, k), got "
                             f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}")
        if ids.numel() == 0:
            raise ValueError(f"{name} is empty, got shape {tuple(ids.shape)}")
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"approx_indices has {approx.shape[0]} queries but exact_indices has {exact.shape[0]}")
    if (exact < 0).any():
        raise ValueError("exact_indices must not contain -1: exact search always finds k vectors")
    approx, exact = approx.cpu().long(), exact.cpu().long()
    found = (exact[:, :, None] == approx[:, None, :]).any(-1)  # (Q, k) exact hit in the approximate list
    return found.double().mean().item()


def bytes_per_vector(index) -> float:
    """The index's size in bytes (``faiss.serialize_index``) divided by its vectors.

    It counts what a vector costs (4·D for flat, ``m·nbits/8`` for PQ codes, the links of
    HNSW, the ids of IVF) and the fixed part shared by all (centroids, codebooks).

    Used in chapter 11, "4. Approximate search at scale".
    """
    if not isinstance(index, faiss.Index):
        raise ValueError(f"index must be a FAISS index (see build_index), got {type(index).__name__}")
    if index.ntotal == 0:
        raise ValueError("index is empty: it holds no vectors to divide its size by")
    return len(faiss.serialize_index(index)) / index.ntotal


# ---- synthetic galleries --------------------------------------------------------------------


def _check_count(name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def synthetic_gallery(n: int, dim: int = 64, seed: int = 0, clusters: int = 256, spread: float = 1.0) -> Tensor:
    """``n`` L2-normalised vectors ``(n, dim)`` from a seeded mixture of Gaussians.

    Stand-ins for embeddings beyond the course's dataset, to time indexes at 100k or 1M
    vectors: ``clusters`` random unit centres, each vector a centre plus Gaussian noise of
    norm about ``spread``, normalised. Real embeddings are clustered like this; uniformly
    random vectors would be the worst case for IVF and HNSW, which exploit the structure.

    Used in chapter 11, "4. Approximate search at scale".
    """
    _check_count("n", n)
    _check_count("dim", dim)
    _check_count("clusters", clusters)
    if not (isinstance(spread, int | float) and spread >= 0 and math.isfinite(spread)):
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(clusters, dim, generator=gen), dim=1)  # (clusters, dim)
    members = torch.randint(clusters, (n,), generator=gen)  # (n,)
    noise = torch.randn(n, dim, generator=gen) * (spread / math.sqrt(dim))
    return F.normalize(centres[members] + noise, dim=1)


def synthetic_queries(gallery: Tensor, n: int, noise: float = 0.1, seed: int = 1) -> Tensor:
    """``n`` queries ``(n, D)``: random rows of ``gallery`` plus Gaussian noise of norm about
    ``noise``, normalised, so every query has a true near neighbour (its source row).

    Used in chapter 11, "4. Approximate search at scale".
    """
    gallery = _as_tensor("gallery", gallery)
    _check_count("n", n)
    if not (isinstance(noise, int | float) and noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(gallery.shape[0], (n,), generator=gen)
    jitter = torch.randn(n, gallery.shape[1], generator=gen) * (noise / math.sqrt(gallery.shape[1]))
    return F.normalize(gallery.cpu()[rows] + jitter, dim=1).to(gallery.device)


# ---- the benchmark ----------------------------------------------------------------------------


def _timed(run, repeats: int = 3) -> tuple[float, object]:
    """The median seconds of ``repeats`` calls of ``run()``, and the last call's result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def _benchmark_size(n, dim, n_queries, k, kinds, seed, say) -> list[dict]:
    gallery = synthetic_gallery(n, dim, seed=seed)
    queries = synthetic_queries(gallery, n_queries, seed=seed + 1)
    say(f"{n:,} vectors: exact search in torch")
    exact_s, (_, exact_ids) = _timed(lambda: exact_search(queries, gallery, k))
    exact_qps = n_queries / exact_s
    base = {"size": n, "dim": dim, "k": k, "threads": torch.get_num_threads()}
    rows = [{**base, "kind": "exact", "params": {}, "build_s": 0.0, "qps": exact_qps, "recall": 1.0,
             "bytes_per_vector": 4.0 * dim, "speedup": 1.0}]  # fmt: skip
    for kind in kinds:
        say(f"{n:,} vectors: building {kind}")
        start = time.perf_counter()
        index = build_index(gallery, kind)
        build_s = time.perf_counter() - start
        say(f"{n:,} vectors: searching {kind}")
        seconds, (_, ids) = _timed(lambda index=index: index_search(index, queries, k))
        rows.append({**base, "kind": kind, "params": default_params(kind, n, dim), "build_s": build_s,
                     "qps": n_queries / seconds, "recall": recall_against_exact(ids, exact_ids),
                     "bytes_per_vector": bytes_per_vector(index),
                     "speedup": exact_s / seconds})  # fmt: skip
    return rows


def benchmark(sizes=(10_000, 100_000), dim: int = 64, n_queries: int = 1000, k: int = 10,
              kinds=("flat", "ivf", "hnsw", "ivfpq"), seed: int = 0, threads: int | None = None,
              progress: bool = False) -> list[dict]:  # fmt: skip
    """Time exact search and each index ``kind`` on synthetic galleries of each size.

    For each size, one row for exact torch search (kind ``"exact"``) and one per kind:
    ``build_s`` (training + adding), ``qps`` (queries per second, the median of 3 timed
    searches of all ``n_queries``), ``recall`` (recall@k against exact search),
    ``bytes_per_vector`` and ``speedup`` (QPS over exact's), with the ``params`` used.
    ``threads`` sets torch's and FAISS's threads for the run (restored after);
    ``progress`` prints each step to stderr. Galleries: :func:`synthetic_gallery`.

    Used in chapter 11, "4. Approximate search at scale".
    """
    sizes = tuple(sizes) if isinstance(sizes, list | tuple) else (sizes,)
    if not sizes:
        raise ValueError("sizes must name at least one gallery size")
    for name, value in (("dim", dim), ("n_queries", n_queries), ("k", k)):
        _check_count(name, value)
    for n in sizes:
        _check_count(f"every size (at least k={k})", n, low=k)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or isinstance(kinds, str):
        raise ValueError(f"kinds must be a list of {', '.join(KINDS)}, got {kinds!r}")
    if threads is not None:
        _check_count("threads", threads)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else (lambda line: None)
    saved = torch.get_num_threads(), faiss.omp_get_max_threads()
    if threads is not None:
        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
    try:
        return [row for n in sizes for row in _benchmark_size(n, dim, n_queries, k, kinds, seed, say)]
    finally:
        torch.set_num_threads(saved[0])
        faiss.omp_set_num_threads(saved[1])
