"""The Gradio app: page layout and handlers that call the ``core.Studio`` facade."""
