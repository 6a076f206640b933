"""course_utils.training.fit: the plain loop of the small networks: steps, clipping, callbacks, interruption."""

import pytest
import torch

from course_utils.training import fit


def problem(scale=1.0):
    """A linear model and the loss of fitting it to y = 3x on fixed points (``scale`` makes gradients large)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 16)[:, None]
    return model, lambda: scale * (model(x) - 3 * x).pow(2).mean()


def test_it_takes_the_given_number_of_steps_and_reports_each():
    model, loss = problem()
    seen = []
    done = fit(model.eval(), loss, torch.optim.SGD(model.parameters(), lr=0.1), 25,
               on_step=lambda step, out: seen.append((step, out.item())))
    assert done == 25 and [s for s, _ in seen] == list(range(25))
    assert seen[-1][1] < 0.1 * seen[0][1]  # it learned
    assert model.training  # left in train mode


def test_steps_may_be_the_step_numbers_themselves():
    model, loss = problem()
    seen = []
    assert fit(model, loss, torch.optim.SGD(model.parameters(), lr=0.1), range(10, 13),
               on_step=lambda step, out: seen.append(step)) == 3
    assert seen == [10, 11, 12]


def test_a_dict_loss_optimises_its_loss_entry_and_hands_the_dict_on():
    model, loss = problem()
    seen = []
    fit(model, lambda: {"loss": loss(), "other": torch.tensor(7.0)}, torch.optim.SGD(model.parameters(), lr=0.1), 2,
        on_step=lambda step, out: seen.append(sorted(out)))
    assert seen == [["loss", "other"], ["loss", "other"]]


def test_gradients_are_clipped_to_the_norm_asked():
    # The gradients left after the last step are those it stepped with: clipped to norm <= 0.5.
    model, loss = problem(scale=1e4)
    fit(model, loss, torch.optim.SGD(model.parameters(), lr=1e-9), 1, grad_clip=0.5)
    assert torch.cat([p.grad.flatten() for p in model.parameters()]).norm() == pytest.approx(0.5, rel=1e-4)
    model, loss = problem(scale=1e4)
    fit(model, loss, torch.optim.SGD(model.parameters(), lr=1e-9), 1)  # grad_clip=0: no clipping
    assert torch.cat([p.grad.flatten() for p in model.parameters()]).norm() > 100


def test_the_scheduler_steps_once_per_step():
    model, loss = problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5**k)
    fit(model, loss, opt, 3, scheduler=sched)
    assert opt.param_groups[0]["lr"] == 0.5**3


def interrupted_at(call):
    """A batch loss that raises KeyboardInterrupt (the notebook's stop button) on its ``call``-th call."""
    model, loss = problem()
    calls = []

    def batch_loss():
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return loss()

    return model, batch_loss


def test_keyboard_interrupt_ends_training_only_when_interruptible():
    model, batch_loss = interrupted_at(3)
    assert fit(model, batch_loss, torch.optim.SGD(model.parameters(), lr=0.1), 10, interruptible=True) == 2
    model, batch_loss = interrupted_at(3)
    with pytest.raises(KeyboardInterrupt):
        fit(model, batch_loss, torch.optim.SGD(model.parameters(), lr=0.1), 10)
