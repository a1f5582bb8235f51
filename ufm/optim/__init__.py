"""Many-seed optimisers: full-batch optimiser, polishing, minibatch training."""
