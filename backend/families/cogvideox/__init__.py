"""CogVideoX 1.0 text-to-video (2B and 5B): finetrainers --model_name cogvideox."""
