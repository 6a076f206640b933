"""course_utils.models.text: the shapes tokenizer and the small text encoder."""

import pytest
import torch

from course_utils.models.text import TextEncoder, shapes_tokenizer

CAPTION = "a red circle on a blue background"


def test_tokenizer_round_trip_and_mask():
    tok = shapes_tokenizer()
    ids, mask = tok.encode([CAPTION, ""])
    assert ids.shape == mask.shape == (2, tok.max_length)
    assert mask[0].sum() == 9 and mask[1].sum() == 2  # <bos> 7 words <eos>; the empty prompt: <bos> <eos>
    assert tok.decode(ids) == [CAPTION, ""]
    assert tok.encode("A Red circle, on a blue background.")[0].equal(ids[:1])  # case and punctuation


@pytest.mark.parametrize("prompt, error, match", [
    ("a pink circle", ValueError, r"unknown words \['pink'\].*knows"),
    ("a red circle " * 3, ValueError, "at most 8 fit"),
    (42, TypeError, "must be a string"),
])
def test_tokenizer_refuses_bad_prompts(prompt, error, match):
    with pytest.raises(error, match=match):
        shapes_tokenizer().encode([prompt])


def test_text_encoder_ignores_padding():
    torch.manual_seed(0)
    tok = shapes_tokenizer()
    enc = TextEncoder(len(tok), tok.max_length).eval()
    ids, mask = tok.encode(["a red circle"])
    other = ids.clone()
    other[~mask] = tok.index["blue"]  # garbage where the mask says "padding"
    a, b = enc(ids, mask), enc(other, mask)
    torch.testing.assert_close(a[mask], b[mask])
    assert TextEncoder.pooled(a, mask).shape == (1, enc.dim)
    with pytest.raises(ValueError, match=r"\(B, 10\) integer"):
        enc(ids.float(), mask)
