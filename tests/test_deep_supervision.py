"""Deep supervision's loss: the auxiliary logits' losses are added at the model's weight, and auxiliary logits
smaller than the masks are scored against the masks sampled at their size, never against blended labels."""
import torch
from hypothesis import given, settings, strategies as st
from torch.nn import functional as F

from segbench.deep_supervision import DeepSupervision, masks_at, split_training_output, supervised_loss

IGNORE = 255


@st.composite
def masks_and_size(draw):
    batch, height, width = draw(st.integers(1, 3)), draw(st.integers(1, 24)), draw(st.integers(1, 24))
    values = draw(st.lists(st.sampled_from([0, 1, 2, 7, 18, IGNORE]), min_size=batch * height * width,
                           max_size=batch * height * width))
    masks = torch.tensor(values, dtype=torch.uint8).view(batch, height, width)
    return masks, (draw(st.integers(1, height)), draw(st.integers(1, width)))


@settings(max_examples=60, deadline=None)
@given(masks_and_size())
def test_sampled_masks_have_the_size_asked_and_only_labels_of_the_input(case):
    masks, size = case
    sampled = masks_at(masks, size)
    assert sampled.shape == (masks.shape[0], *size) and sampled.dtype == masks.dtype
    for image, small in zip(masks, sampled):
        assert set(small.unique().tolist()) <= set(image.unique().tolist())


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_an_integer_factor_takes_the_label_at_each_blocks_centre(rows, cols, factor):
    """With factor 2 the pixel at (1, 1) of each 2x2 block; every factor picks one whole pixel per block."""
    masks = torch.arange(rows * factor * cols * factor, dtype=torch.long).view(1, rows * factor, cols * factor)
    sampled = masks_at(masks, (rows, cols))
    torch.testing.assert_close(sampled, masks[:, factor // 2::factor, factor // 2::factor])


def test_masks_at_their_own_size_are_returned_unchanged():
    masks = torch.randint(0, 19, (2, 8, 16))
    assert masks_at(masks, (8, 16)) is masks


def test_the_loss_adds_each_auxiliary_loss_at_the_weight_with_masks_at_its_size():
    torch.manual_seed(0)
    masks = torch.randint(0, 5, (2, 8, 16))
    masks[0, :2] = IGNORE
    logits, half, quarter = torch.randn(2, 5, 8, 16), torch.randn(2, 5, 4, 8), torch.randn(2, 5, 2, 4)

    def criterion(scores, target):
        return F.cross_entropy(scores, target, ignore_index=IGNORE)

    loss = supervised_loss(criterion, DeepSupervision(logits, (half, quarter), 0.25), masks)
    expected = (criterion(logits, masks) + 0.25 * criterion(half, masks[:, 1::2, 1::2])
                + 0.25 * criterion(quarter, masks[:, 2::4, 2::4]))
    torch.testing.assert_close(loss, expected)


def test_plain_logits_are_their_own_loss():
    logits, masks = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    output = split_training_output(logits)
    assert output.auxiliary == () and output.logits is logits
    torch.testing.assert_close(supervised_loss(F.cross_entropy, output, masks), F.cross_entropy(logits, masks))
