"""Images and masks: palette, reading, datasets, transforms, splits, the DataModule, data checks."""
