"""The command-line tools, by job: `lora/` (LoRA files), `captioning/` (captions and tags),
`metadata/` (the fine-tune metadata workflow), `dataset/` (dataset folders); `cli/` and `flags/`
are what their command lines share. The modules here are the documented commands
(`python -m backend.tools.<tool>`, sd-scripts' names): each runs the tool of that name in its
package, so users' scripts and exported GUI commands keep working."""
