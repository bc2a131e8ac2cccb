"""Using a trained model: the Predictor (torch, ONNX), prediction files, evaluation, export."""
