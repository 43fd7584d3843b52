import pytest
import torch

from engine.losses import reconstruction_loss
from engine.models.masking import patchify, random_masking, unpatchify, unshuffle


@pytest.mark.parametrize("length,ratio", [(16, 0.75), (16, 0.5), (17, 0.3), (4, 0.8), (64, 0.9)])
def test_mask_counts_and_inverse(length, ratio):
    x = torch.randn(3, length, 8)
    kept, mask, ids_restore = random_masking(x, ratio, torch.Generator().manual_seed(1))
    keep = int(length * (1 - ratio))
    assert kept.shape == (3, keep, 8)
    assert (mask.sum(1) == length - keep).all()
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    assert (torch.gather(ids_shuffle, 1, ids_restore) == torch.arange(length)).all()
    # The kept tokens are exactly the mask-0 positions, in shuffled order.
    for b in range(3):
        visible = x[b][mask[b] == 0]
        assert torch.equal(torch.sort(kept[b], dim=0).values, torch.sort(visible, dim=0).values)


def test_unshuffling_puts_visible_tokens_back_in_place():
    x = torch.randn(2, 16, 4)
    kept, mask, ids_restore = random_masking(x, 0.75, torch.Generator().manual_seed(3))
    filler = torch.full((2, 16 - kept.shape[1], 4), float("nan"))
    restored = unshuffle(torch.cat([kept, filler], dim=1), ids_restore)
    visible = mask == 0
    assert torch.equal(restored[visible], x[visible])
    assert torch.isnan(restored[~visible]).all()


def test_same_seed_same_mask_and_different_seed_differs():
    x = torch.randn(4, 64, 8)
    first = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    again = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    other = random_masking(x, 0.75, torch.Generator().manual_seed(8))[1]
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("channels", [1, 3])
def test_patchify_round_trip(channels):
    images = torch.rand(2, channels, 16, 16)
    patches = patchify(images, 4)
    assert patches.shape == (2, 16, 4 * 4 * channels)
    assert torch.equal(unpatchify(patches, 4, channels), images)
    # The first patch is the top-left 4x4 block.
    assert torch.equal(patches[0, 0].reshape(4, 4, channels).permute(2, 0, 1), images[0, :, :4, :4])


def test_reconstruction_loss_has_zero_gradient_at_visible_patches_after_real_masking():
    images = torch.rand(2, 1, 16, 16)
    target = patchify(images, 4)
    _, mask, _ = random_masking(torch.zeros(2, 16, 1), 0.5, torch.Generator().manual_seed(0))
    pred = torch.zeros_like(target, requires_grad=True)
    reconstruction_loss(pred, target, mask, "masked").backward()
    assert (pred.grad[mask == 0] == 0).all() and (pred.grad[mask == 1] != 0).any()
