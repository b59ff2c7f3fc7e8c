"""Training objectives: how a step noises the latents, what the model must predict and how each
sample's loss is weighted. A family picks its objective (`ModelFamily.objective`); the loop only
sees `Objective`.

- `ddpm.py`: DDPM with 1000 discrete timesteps, epsilon or v-prediction (SD 1.x/2.x, SDXL), with
  sd-scripts' noise options (`noise.py`) and SNR weightings (`loss.py`);
- `flow_matching.py`: rectified flow with sd-scripts' timestep samplings, prediction types and SD3
  weightings (Flux, SD3, the video models; no family returns it yet).
"""
