"""The environment: coding problems with an announced loophole, the sandboxed grader that labels each program,
and the one call the loop makes (`rollouts.grade_problems`). Knows nothing of models or gradients."""
