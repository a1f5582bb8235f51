"""Many-seed optimisers: full-batch optimiser, polishing, minibatch training."""

from .train import TrainResult as TrainResult
from .train import train as train
