"""Chapter 11's search: exact torch search, FAISS's indexes against it, and bad input."""

import datasets
import faiss
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.retrieval import search


@pytest.fixture(autouse=True)
def one_thread():
    """Small, single-threaded searches: fast and repeatable on a shared CPU."""
    saved = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(saved[0])
    faiss.omp_set_num_threads(saved[1])


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


@pytest.fixture(scope="module")
def clustered():
    """A small clustered gallery (2,000 × 32) and 100 queries near its rows."""
    gallery = search.synthetic_gallery(2000, dim=32, seed=0, clusters=16)
    return gallery, search.synthetic_queries(gallery, 100, noise=0.1, seed=1)


# ---- exact search ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 1000])
def test_exact_search_equals_a_brute_force_argsort(chunk_size):
    gallery, queries = unit_rows(500, 16, 0), unit_rows(40, 16, 1)
    scores, indices = search.exact_search(queries, gallery, 8, chunk_size=chunk_size)
    similarity = queries @ gallery.T
    expected = similarity.argsort(dim=1, descending=True)[:, :8]
    assert scores.dtype == torch.float32 and indices.dtype == torch.int64
    assert torch.equal(indices, expected)
    torch.testing.assert_close(scores, similarity.gather(1, expected))
    numpy_scores, numpy_indices = search.exact_search(queries.numpy(), gallery.double().numpy(), 8)
    assert torch.equal(numpy_indices, expected) and numpy_scores.dtype == torch.float32


def test_the_flat_index_returns_what_exact_search_returns():
    gallery, queries = unit_rows(800, 24, 2), unit_rows(30, 24, 3)
    index = search.build_index(gallery, "flat")
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 800
    scores, indices = search.index_search(index, queries, 10)
    exact_scores, exact_indices = search.exact_search(queries, gallery, 10)
    assert indices.dtype == torch.int64 and scores.dtype == torch.float32
    torch.testing.assert_close(indices, exact_indices)
    torch.testing.assert_close(scores, exact_scores)


def test_ivf_scanning_every_cell_is_exact(clustered):
    gallery, queries = clustered
    index = search.build_index(gallery, "ivf", nlist=20, nprobe=20)
    assert isinstance(index, faiss.IndexIVFFlat) and index.nlist == 20 and index.nprobe == 20
    scores, indices = search.index_search(index, queries, 10)
    exact_scores, exact_indices = search.exact_search(queries, gallery, 10)
    torch.testing.assert_close(indices, exact_indices)
    torch.testing.assert_close(scores, exact_scores)
    few = search.build_index(gallery, "ivf", nlist=20, nprobe=1)  # one cell: approximate
    assert search.recall_against_exact(search.index_search(few, queries, 10)[1], exact_indices) < 1.0


def test_hnsw_finds_most_of_the_exact_neighbours(clustered):
    gallery, queries = clustered
    index = search.build_index(gallery, "hnsw")
    assert isinstance(index, faiss.IndexHNSWFlat) and index.hnsw.efSearch == 48
    _, exact_indices = search.exact_search(queries, gallery, 10)
    assert search.recall_against_exact(search.index_search(index, queries, 10)[1], exact_indices) >= 0.9


def test_pq_codes_are_smaller_than_flat_vectors(clustered):
    gallery, _ = clustered
    flat = search.bytes_per_vector(search.build_index(gallery, "flat"))
    assert 4 * 32 <= flat < 4 * 32 + 1  # float32 rows and a small header
    pq = search.bytes_per_vector(search.build_index(gallery, "pq", m=8, nbits=8))
    assert 8 <= pq < flat / 4
    ivfpq = search.bytes_per_vector(search.build_index(gallery, "ivfpq", nlist=16, m=8))
    assert 8 + 8 <= ivfpq < flat / 2  # the code and the 8-byte id of each vector, plus centroids


def test_training_restores_faiss_blas_threshold(clustered):
    gallery, _ = clustered
    before = faiss.cvar.distance_compute_blas_threshold
    search.build_index(gallery, "ivfpq", nlist=16, m=8)
    assert faiss.cvar.distance_compute_blas_threshold == before


def test_default_params_follow_the_size_and_width():
    assert search.default_params("ivf", 100_000, 64) == {"nlist": 1265, "nprobe": 8, "train_size": 80_960}
    assert search.default_params("pq", 1000, 64) == {"m": 16, "nbits": 8, "train_size": 1000}
    assert search.default_params("pq", 1000, 30)["m"] == 6  # the largest divisor of 30 up to 7
    assert search.default_params("ivfpq", 50, 8)["nprobe"] == 8 and search.default_params("flat", 5, 4) == {}


# ---- measuring the approximation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("approx", "exact", "expected"),
    [
        ([[0, 1, 2], [5, 6, 7]], [[2, 1, 0], [7, 6, 5]], 1.0),  # order does not matter
        ([[0, 1, 2], [5, -1, -1]], [[2, 1, 0], [5, 6, 7]], (3 / 3 + 1 / 3) / 2),  # -1 is a miss
        ([[9, 8, 7], [-1, -1, -1]], [[2, 1, 0], [5, 6, 7]], 0.0),
        ([[0, 9, 9, 9, 1]], [[0, 1]], 1.0),  # a longer approximate list
        ([[0]], [[0, 1]], 0.5),
    ],
)
def test_recall_against_exact_by_hand(approx, exact, expected):
    assert search.recall_against_exact(torch.tensor(approx), torch.tensor(exact)) == pytest.approx(expected)
    assert search.recall_against_exact(np.array(approx), np.array(exact)) == pytest.approx(expected)


# ---- the helper users call -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "least_recall"),
    [("exact", {}, 1.0), ("flat", {}, 1.0), ("ivf", {"nlist": 16}, 0.9), ("hnsw", {}, 0.9),
     ("pq", {"m": 8}, 0.3), ("ivfpq", {"nlist": 16, "m": 8}, 0.3)],
)  # fmt: skip
def test_search_on_torch_embeddings(clustered, kind, params, least_recall):
    gallery, queries = clustered
    scores, indices = search.search(gallery, queries, k=10, index=kind, **params)
    assert scores.shape == indices.shape == (100, 10)
    assert scores.dtype == torch.float32 and indices.dtype == torch.int64
    assert scores.device.type == indices.device.type == "cpu"
    assert (scores[:, :-1] >= scores[:, 1:] - 1e-6).all()  # best first
    assert ((indices >= 0) & (indices < 2000)).all()
    _, exact_indices = search.exact_search(queries, gallery, 10)
    assert search.recall_against_exact(indices, exact_indices) >= least_recall


def test_search_defaults_to_exact_top_10(clustered):
    gallery, queries = clustered
    scores, indices = search.search(gallery, queries)
    assert torch.equal(indices, search.exact_search(queries, gallery, 10)[1])
    assert (scores[:, 0] > 0.99).all()  # each query's source row, a true near neighbour


def test_missing_results_are_minus_one_with_minus_infinity(clustered):
    gallery, queries = clustered
    index = search.build_index(gallery[:40], "ivf", nlist=40, nprobe=1)  # about one vector a cell
    scores, indices = search.index_search(index, queries, 10)
    missing = indices == -1
    assert missing.any() and torch.isneginf(scores[missing]).all() and torch.isfinite(scores[~missing]).all()


def test_the_datasets_way_finds_the_same_neighbours(clustered):
    gallery, queries = clustered
    table = datasets.Dataset.from_dict({"image_id": list(range(len(gallery))), "embedding": gallery.numpy()})
    table.add_faiss_index(column="embedding", metric_type=faiss.METRIC_INNER_PRODUCT)
    exact_scores, exact_indices = search.exact_search(queries, gallery, 5)
    found = table.search_batch("embedding", queries.numpy(), k=5)
    assert np.array_equal(np.asarray(found.total_indices), exact_indices.numpy())
    np.testing.assert_allclose(np.asarray(found.total_scores), exact_scores.numpy(), rtol=1e-5)
    nearest = table.get_nearest_examples_batch("embedding", queries.numpy(), k=5)
    assert [example["image_id"] for example in nearest.total_examples] == exact_indices.tolist()


# ---- synthetic galleries and the benchmark -------------------------------------------------


def test_synthetic_galleries_are_seeded_unit_vectors_in_clusters():
    gallery = search.synthetic_gallery(600, dim=16, seed=3, clusters=4)
    assert gallery.shape == (600, 16) and gallery.dtype == torch.float32
    torch.testing.assert_close(gallery.norm(dim=1), torch.ones(600))
    assert torch.equal(gallery, search.synthetic_gallery(600, dim=16, seed=3, clusters=4))
    assert not torch.equal(gallery, search.synthetic_gallery(600, dim=16, seed=4, clusters=4))
    uniform = unit_rows(600, 16, 0)
    # clustered: a typical pair is far more similar than two random directions
    assert (gallery @ gallery.T).mean() > 0.1 > (uniform @ uniform.T).mean()
    queries = search.synthetic_queries(gallery, 50, noise=0.1, seed=0)
    torch.testing.assert_close(queries.norm(dim=1), torch.ones(50))
    assert (search.exact_search(queries, gallery, 1)[0] > 0.99).all()
    far = search.synthetic_queries(gallery, 50, noise=3.0, seed=0)
    assert (search.exact_search(far, gallery, 1)[0] < 0.99).any()


def test_benchmark_reports_every_kind_and_restores_the_threads(capsys):
    torch.set_num_threads(1)
    rows = search.benchmark(sizes=(400,), dim=16, n_queries=20, k=5, kinds=search.KINDS, threads=1,
                            progress=True)  # fmt: skip
    assert [row["kind"] for row in rows] == ["exact", *search.KINDS]
    for row in rows:
        assert row["size"] == 400 and row["k"] == 5 and row["threads"] == 1
        assert row["qps"] > 0 and row["build_s"] >= 0 and row["bytes_per_vector"] > 0
        assert 0 <= row["recall"] <= 1 and row["speedup"] > 0
    by_kind = {row["kind"]: row for row in rows}
    assert by_kind["exact"]["recall"] == by_kind["flat"]["recall"] == 1.0
    assert by_kind["pq"]["bytes_per_vector"] < by_kind["flat"]["bytes_per_vector"]
    assert by_kind["ivf"]["params"]["nlist"] == 80
    assert "400 vectors: building hnsw" in capsys.readouterr().err


# ---- bad input ---------------------------------------------------------------------------------

GALLERY, QUERIES = unit_rows(50, 8, 0), unit_rows(4, 8, 1)


@pytest.mark.parametrize(
    ("queries", "gallery", "k", "message"),
    [
        (QUERIES[0], GALLERY, 3, r"queries must be 2-D \(rows, D\)"),
        (QUERIES, GALLERY[:, :5], 3, "queries have D=8 but the gallery has D=5"),
        (QUERIES, GALLERY.tolist(), 3, "gallery must be a torch.Tensor or numpy array, got list"),
        (QUERIES, GALLERY[:0], 3, r"at least one row, got shape \(0, 8\)"),
        (QUERIES * float("nan"), GALLERY, 3, "queries must be finite"),
        (QUERIES, GALLERY.clone().index_fill_(0, torch.tensor([3]), float("inf")), 3, "gallery must be finite"),
        (QUERIES.bool(), GALLERY, 3, "queries must be real-valued"),
        (QUERIES, GALLERY, 0, r"k must be an int in \[1, N=50\], got 0"),
        (QUERIES, GALLERY, 51, "got 51"),
        (QUERIES, GALLERY, 2.0, "got 2.0"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("where", ["exact_search", "search", "search flat"])
def test_bad_search_input_raises(where, queries, gallery, k, message):
    with pytest.raises(ValueError, match=message):
        if where == "exact_search":
            search.exact_search(queries, gallery, k)
        elif where == "search":
            search.search(gallery, queries, k=k)
        else:
            search.search(gallery, queries, k=k, index="flat")


def test_bad_chunk_size_raises():
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        search.exact_search(QUERIES, GALLERY, 3, chunk_size=0)


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("annoy", {}, "unknown index kind 'annoy'; known: flat, ivf, hnsw, pq, ivfpq"),
        ("flat", {"nlist": 4}, "unknown parameter.* nlist for a 'flat' index; it takes: none"),
        ("hnsw", {"efSearch": 4}, "unknown parameter.* efSearch for a 'hnsw' index; it takes: M, ef_construction"),
        ("ivf", {"nlist": 51}, r"nlist=51 is more than the number of vectors \(50\)"),
        ("ivf", {"nlist": 4, "nprobe": 5}, r"nprobe=5 is more than nlist \(4\)"),
        ("ivf", {"nlist": 0}, "nlist must be a positive int, got 0"),
        ("ivf", {"nlist": 4.0}, "nlist must be a positive int, got 4.0"),
        ("hnsw", {"M": True}, "M must be a positive int, got True"),
        ("pq", {"m": 3, "nbits": 4}, "m=3 must divide the vectors' width D=8"),
        ("pq", {"m": 2, "nbits": 17}, r"nbits=17 is more than 16"),
        ("pq", {"m": 2, "nbits": 8}, "train_size=50 is fewer than the 256 centroids"),
        ("ivf", {"nlist": 8, "train_size": 60}, r"train_size=60 is more than the number of vectors \(50\)"),
        ("ivfpq", {"nlist": 8, "m": 2, "nbits": 4, "train_size": 10}, "train_size=10 is fewer than the 16"),
    ],
)  # fmt: skip
def test_bad_index_kind_or_params_raise(kind, params, message):
    with pytest.raises(ValueError, match=message):
        search.build_index(GALLERY, kind, **params)


def test_bad_index_or_search_options_raise():
    with pytest.raises(ValueError, match="index must be a FAISS index"):
        search.index_search(GALLERY, QUERIES, 3)
    with pytest.raises(ValueError, match="index is empty"):
        search.index_search(faiss.IndexFlatIP(8), QUERIES, 3)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, the index's ntotal=50\]"):
        search.index_search(search.build_index(GALLERY), QUERIES, 51)
    with pytest.raises(ValueError, match="unknown index 'annoy'; known: exact, flat"):
        search.search(GALLERY, QUERIES, index="annoy")
    with pytest.raises(ValueError, match="exact search takes no parameters, got nprobe"):
        search.search(GALLERY, QUERIES, index="exact", nprobe=3)
    with pytest.raises(ValueError, match="unknown parameter.* M for a 'ivf' index"):
        search.search(GALLERY, QUERIES, index="ivf", M=3)
    with pytest.raises(ValueError, match="index must be a FAISS index"):
        search.bytes_per_vector("flat")
    with pytest.raises(ValueError, match="index is empty"):
        search.bytes_per_vector(faiss.IndexFlatIP(8))
    with pytest.raises(ValueError, match="unknown index kind"):
        search.default_params("lsh", 10, 8)


@pytest.mark.parametrize(
    ("approx", "exact", "message"),
    [
        (torch.tensor([0, 1]), torch.tensor([[0, 1]]), r"approx_indices must be a 2-D integer tensor"),
        (torch.tensor([[0.0, 1.0]]), torch.tensor([[0, 1]]), r"approx_indices must be a 2-D integer tensor"),
        ([[0, 1]], torch.tensor([[0, 1]]), "approx_indices must be a 2-D integer tensor"),
        (torch.tensor([[0, 1]]), torch.tensor([[True, False]]), "exact_indices must be a 2-D integer"),
        (torch.tensor([[0, 1]]), torch.zeros(1, 0, dtype=torch.long), "exact_indices is empty"),
        (torch.tensor([[0, 1]]), torch.tensor([[0, 1], [2, 3]]), "approx_indices has 1 queries but exact_indices has 2"),
        (torch.tensor([[0, 1]]), torch.tensor([[0, -1]]), "exact_indices must not contain -1"),
    ],
)  # fmt: skip
def test_bad_recall_input_raises(approx, exact, message):
    with pytest.raises(ValueError, match=message):
        search.recall_against_exact(approx, exact)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: search.synthetic_gallery(0), "n must be an int >= 1, got 0"),
        (lambda: search.synthetic_gallery(10, dim=2.5), "dim must be an int >= 1, got 2.5"),
        (lambda: search.synthetic_gallery(10, clusters=0), "clusters must be an int >= 1"),
        (lambda: search.synthetic_gallery(10, spread=-1.0), "spread must be a finite number >= 0"),
        (lambda: search.synthetic_queries(GALLERY, 5, noise=float("nan")), "noise must be a finite number"),
        (lambda: search.synthetic_queries(GALLERY, -1), "n must be an int >= 1, got -1"),
        (lambda: search.benchmark(sizes=(), n_queries=2), "sizes must name at least one"),
        (lambda: search.benchmark(sizes=(5,), k=10), r"every size \(at least k=10\) must be an int >= 10, got 5"),
        (lambda: search.benchmark(sizes=(50,), kinds=("flat", "lsh")), "kinds must be a list of flat"),
        (lambda: search.benchmark(sizes=(50,), kinds="flat"), "kinds must be a list of flat"),
        (lambda: search.benchmark(sizes=(50,), threads=0), "threads must be an int >= 1, got 0"),
        (lambda: search.benchmark(sizes=(50,), n_queries=0), "n_queries must be an int >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_synthetic_or_benchmark_options_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
