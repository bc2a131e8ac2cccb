"""The LightningModule and what it is built from: smp factory, losses, metrics, optimisers, checkpoints, tiling."""
