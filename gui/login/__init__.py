"""The login: credentials from the launch flags (`auth`) and the ASGI gate in front of Gradio (`login_gate`)."""
