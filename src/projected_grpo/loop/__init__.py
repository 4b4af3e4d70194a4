"""The loop: a minimal Dr.GRPO trainer (sampling, the fast decoder, per-rollout gradients, AdamW, DDP) with its
run configuration, model loading, logs and plots. Calls the environment to grade and the method's hooks to intervene."""
