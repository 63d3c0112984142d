"""Retrieval over fused posteriors: a planted match is found, scores are ordered, keys replace."""

import pytest
import torch

from core.retrieval import LatentIndex


def random_posteriors(count, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, dim, generator=generator), torch.randn(count, dim, generator=generator) * 0.3 - 1


@pytest.mark.parametrize("metric", ["cosine", "likelihood"])
def test_a_planted_match_ranks_first(metric):
    mu, logvar = random_posteriors(200)
    index = LatentIndex(metric=metric)
    index.add([f"item-{i}" for i in range(200)], mu, logvar)
    hits = index.search(mu[[17, 123]] + 0.01, logvar[[17, 123]], k=5)
    assert [row[0].key for row in hits] == ["item-17", "item-123"]
    for row in hits:
        assert [h.rank for h in row] == list(range(5))
        assert all(a.score >= b.score for a, b in zip(row, row[1:], strict=False))


def test_cosine_score_of_an_identical_item_is_one():
    mu, logvar = random_posteriors(10)
    index = LatentIndex()
    index.add([str(i) for i in range(10)], mu, logvar)
    assert index.search(mu[3:4], logvar[3:4], k=1)[0][0].score == pytest.approx(1.0, abs=1e-6)


def test_k_larger_than_the_index_and_replacing_keys():
    mu, logvar = random_posteriors(3)
    index = LatentIndex()
    index.add(["a", "b", "c"], mu, logvar)
    assert len(index.search(mu[:1], logvar[:1], k=10)[0]) == 3
    index.add(["b"], mu[2:3] * -1, logvar[2:3])
    assert len(index) == 3 and index.keys[-1] == "b"


def test_errors():
    with pytest.raises(ValueError, match="metric"):
        LatentIndex(metric="dot")
    index = LatentIndex()
    with pytest.raises(ValueError, match="empty"):
        index.search(torch.zeros(1, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="one key per row"):
        index.add(["a"], torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="unique"):
        index.add(["a", "a"], torch.zeros(2, 4), torch.zeros(2, 4))


def test_remove_drops_items_and_an_emptied_index_says_so():
    mu, logvar = random_posteriors(4)
    index = LatentIndex()
    index.add(["a", "b", "c", "d"], mu, logvar)
    index.remove(["b", "zzz"])
    assert index.keys == ["a", "c", "d"]
    assert [h.key for h in index.search(mu[2:3], logvar[2:3], k=1)[0]] == ["c"]
    index.remove(["a", "c", "d"])
    with pytest.raises(ValueError, match="empty"):
        index.search(mu[:1], logvar[:1])
