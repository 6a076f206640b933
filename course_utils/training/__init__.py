"""Training, in parts: ``config`` (how to train), ``objectives`` (the losses of each model family),
``state`` (optimiser, EMA, generator; checkpoint and resume), ``acceleration`` (eager, autocast,
compile, CUDA-graph steps), ``distributed`` (data parallelism under torchrun), ``loop`` (``train``,
which puts them together) and ``fit`` (the plain loop of the small networks).

.. code-block:: python

    from course_utils.training import TrainConfig, train
    result = train(UNet("digits-small"), images, get_schedule("cosine"), TrainConfig(steps=2000))
    result.ema_model  # the weights to sample with
"""

from .acceleration import STEP_MARK, TIMED_AFTER
from .config import OBJECTIVES, PRECISIONS, TrainConfig, TrainingDiverged
from .fit import fit
from .loop import TrainResult, train
from .objectives import consistency_loss, diffusion_loss, flow_loss, simple_loss
from .state import EMA, TrainingState, save_training_state

__all__ = ["EMA", "OBJECTIVES", "PRECISIONS", "STEP_MARK", "TIMED_AFTER", "TrainConfig", "TrainResult", "TrainingDiverged",
           "TrainingState", "consistency_loss", "diffusion_loss", "fit", "flow_loss", "save_training_state",
           "simple_loss", "train"]
