"""course_utils.models.clip: the tiny CLIP, its contrastive loss, and CLIP scoring (tiny and Hugging Face)."""

import pytest
import torch

from course_utils.data import make_shapes
from course_utils.models.clip import CLIPScorer, TinyCLIP, all_captions, clip_loss, train_tiny_clip
from course_utils.models.text import shapes_tokenizer

CAPTION = "a red circle on a blue background"


def test_every_caption_is_known_and_there_are_ninety():
    caps = all_captions()
    assert len(caps) == len(set(caps)) == 90
    shapes_tokenizer().encode(caps)


def test_clip_loss_rewards_matching_pairs_and_treats_duplicates_as_positives():
    same = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    good = torch.where(same, 10.0, -10.0)
    bad = -good
    assert clip_loss(good, same) < 0.8 < clip_loss(bad, same)
    # two identical captions: splitting probability evenly between them is optimal, loss = log 2 per duplicate row
    assert clip_loss(good, same) == pytest.approx((2 * 2 * torch.log(torch.tensor(2.0)).item()) / 6, abs=1e-3)


def test_tiny_clip_learns_something_in_a_few_steps():
    data = make_shapes(256, seed=0)
    model = train_tiny_clip(data, steps=25, batch_size=64, lr=3e-3)
    ids, mask = model.tokenizer.encode(data.captions[:64])
    with torch.no_grad():
        logits = model(data.images[:64], ids, mask)
    same = ids[:, None, :].eq(ids[None, :, :]).all(-1)
    untrained = TinyCLIP()
    with torch.no_grad():
        before = clip_loss(untrained(data.images[:64], ids, mask), same)
    assert clip_loss(logits, same) < before


def test_tiny_clip_scorer_is_differentiable_in_the_pixels():
    torch.manual_seed(0)
    scorer = CLIPScorer(TinyCLIP())
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    s = scorer.score(x, CAPTION)
    assert s.shape == (2,) and torch.all(s.abs() <= 100 + 1e-3)
    s.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one per image"):
        scorer.score(x, [CAPTION] * 3)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        scorer.score(x[:, :1], CAPTION)


def test_real_clip_path_with_a_small_random_model(small_hf_clip):
    model, tokenizer = small_hf_clip
    scorer = CLIPScorer(model, tokenizer)
    x = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()  # resized to the model's 32 px inside
    s = scorer.score(x, [CAPTION, "a green square on a white background"])
    assert s.shape == (2,) and torch.isfinite(s).all() and torch.all(s.abs() <= 100 + 1e-3)
    s.sum().backward()
    assert x.grad.abs().sum() > 0
    # the same numbers by hand: CLIP normalisation, then cosine similarity x 100
    with torch.no_grad():
        px = torch.nn.functional.interpolate((x + 1) / 2, size=(32, 32), mode="bilinear", align_corners=False)
        mean = torch.tensor(CLIPScorer.CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIPScorer.CLIP_STD).view(1, 3, 1, 1)
        out = model(**tokenizer([CAPTION, "a green square on a white background"], padding=True, return_tensors="pt"),
                    pixel_values=(px - mean) / std)
        expected = 100 * (out.image_embeds * out.text_embeds).sum(-1)
    torch.testing.assert_close(s.detach(), expected, atol=1e-4, rtol=1e-4)


def test_hf_model_without_tokenizer_is_refused(small_hf_clip):
    with pytest.raises(ValueError, match="needs its tokenizer"):
        CLIPScorer(small_hf_clip[0])


def test_shipped_tiny_clip_names_unseen_shapes_zero_shot():
    from course_utils import pretrained
    from course_utils.models.clip import zero_shot_accuracy

    model = pretrained.load("tiny-clip", device="cpu")
    assert zero_shot_accuracy(model, make_shapes(500, seed=7)) >= 0.95  # 90-way, chance is 1.1%
    assert pretrained.info("tiny-clip")["card"]["zero_shot_accuracy"] >= 0.95
