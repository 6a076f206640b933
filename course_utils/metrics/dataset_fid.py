"""digits-FID's recipe for another labelled dataset (MNIST, Fashion-MNIST): the classifier trained on the fly.

digits-FID reads a shipped classifier's 64-d features; a dataset without one gets its own the same way
(``train_digit_classifier``: the same network, the same augmentation) on its training images. The
Fréchet distance is then taken, as for digits, against the features of a reference set of real held-out
images, at a fixed count ``n`` whose real-vs-real value (a second real set of ``n``) is the floor.
"""

from __future__ import annotations

import torch

from .._validation import check_images, check_labels, check_positive_int
from .classifier import DigitClassifier, accuracy, train_digit_classifier
from .frechet import frechet_distance, gaussian_stats


class DatasetFID:
    """A Fréchet distance on a classifier trained for ``train_images`` (all ``(N, 1, 16, 16)`` in [-1, 1]).

    Args:
        train_images, train_labels: what the classifier learns from (labels 0..9).
        test_images, test_labels: held-out real images: the first ``n`` are the reference, the next
            ``n`` the real-vs-real floor, and all of them the classifier's accuracy.
        n: the count every distance is measured at (FID grows as the count shrinks).
        classifier_steps: training steps (1,500: about a minute on a CPU, as the shipped one).

    Attributes: ``classifier``, ``accuracy`` (on the test images), ``floor`` (real-vs-real at ``n``).
    """

    def __init__(self, train_images: torch.Tensor, train_labels, test_images: torch.Tensor, test_labels,
                 n: int = 1000, classifier_steps: int = 1500, seed: int = 0):
        shape = (1, 16, 16)
        what = "(N, 1, 16, 16) images (load_mnist(..., size=16))"
        check_images(train_images, "train_images", shape=shape, what=what)
        check_images(test_images, "test_images", shape=shape, what=what)
        train_labels = check_labels(train_labels, len(train_images), 10, "train_labels")
        test_labels = check_labels(test_labels, len(test_images), 10, "test_labels")
        self.n = check_positive_int("n", n)
        if len(test_images) < 2 * self.n:
            raise ValueError(f"n={self.n} needs at least {2 * self.n} test_images (a reference set and a floor set "
                             f"of n each), got {len(test_images)}.")
        self.classifier: DigitClassifier = train_digit_classifier(
            train_images.float(), train_labels, steps=check_positive_int("classifier_steps", classifier_steps),
            seed=seed)
        self.accuracy = accuracy(self.classifier, test_images.float(), test_labels)
        self._reference = gaussian_stats(self.features(test_images[: self.n]))
        self.floor = self.fid(test_images[self.n: 2 * self.n])

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """``(N, 1, 16, 16)`` -> ``(N, 64)`` float64 features of this dataset's classifier."""
        check_images(images, shape=(1, 16, 16), what="(N, 1, 16, 16) images")
        chunks = [self.classifier.features(images[i:i + batch_size].float().cpu())
                  for i in range(0, len(images), batch_size)]
        return torch.cat(chunks).double()

    def fid(self, images: torch.Tensor) -> float:
        """The Fréchet distance of ``images`` (exactly ``n`` of them) to the reference set."""
        if len(images) != self.n:
            raise ValueError(f"this FID is measured at n = {self.n} images (its floor's count), got {len(images)}.")
        return frechet_distance(*gaussian_stats(self.features(images)), *self._reference)
