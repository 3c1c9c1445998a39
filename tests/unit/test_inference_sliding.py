"""Unit tests of sliding-window inference: coverage and exact stitching for a translation-invariant net."""

import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.inference.sliding import resolve_tiling, sliding_logits, window_starts


def test_window_starts_cover_and_end_at_edge():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 2) == [0]
    assert window_starts(3, 8, 2) == [0]
    for length, tile, stride in [(37, 8, 5), (64, 32, 21), (9, 3, 3)]:
        covered = set()
        for s in window_starts(length, tile, stride):
            assert 0 <= s and s + tile <= length
            covered.update(range(s, s + tile))
        assert covered == set(range(length))


def test_resolve_tiling_defaults_and_errors():
    assert resolve_tiling(100, 50, 32) == (32, 32, 21, 21)
    assert resolve_tiling(20, 50, (32, 16), (8, 4)) == (20, 16, 8, 4)
    with pytest.raises(ValidationError):
        resolve_tiling(10, 10, 4, 5)
    with pytest.raises(ValidationError):
        resolve_tiling(10, 10, 0)


def _pointwise_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 5, 1)).eval()


@pytest.mark.parametrize("tile,stride", [(16, 16), (16, 11), ((13, 20), (7, 9)), (64, 64)])
def test_tiling_reproduces_whole_image_for_translation_invariant_net(tile, stride):
    net = _pointwise_net()
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        whole = net(x)
        tiled = sliding_logits(net, x, tile, stride)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
    assert torch.equal(tiled.argmax(1), whole.argmax(1))


def test_tiling_differs_for_a_net_with_context():
    """Guard: a 3×3 zero-padded conv sees tile borders, so stitching is not exact (the test above can fail)."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(sliding_logits(net, x, 16, 16), net(x), atol=1e-4)


def test_overlap_is_averaged():
    calls = []

    def fwd(t):
        calls.append(tuple(t.shape[-2:]))
        return torch.ones(t.shape[0], 1, t.shape[2], t.shape[3]) * len(calls)

    out = sliding_logits(fwd, torch.zeros(1, 3, 4, 6), 4, 2)
    # windows at x=0 (value 1) and x=2 (value 2): overlap columns 2..3 average to 1.5
    assert calls == [(4, 4), (4, 4)]
    assert out[0, 0, 0].tolist() == [1, 1, 1.5, 1.5, 2, 2]


def test_wrong_output_size_is_reported():
    with pytest.raises(ValidationError, match="size of its input"):
        sliding_logits(lambda t: t[:, :, :-1], torch.zeros(1, 3, 8, 8), 4, 4)
