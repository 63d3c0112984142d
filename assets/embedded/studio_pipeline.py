"""This folder is a Fusion Studio studio, loaded by its own pipeline class."""

raise ImportError(
    "A Fusion Studio folder is not loaded by DiffusionPipeline.from_pretrained (its encoders and image bank are "
    "not diffusers models): install fusion-studio and call core.load_studio(folder) or "
    "core.pipelines.studio_pipeline.StudioPipeline.from_pretrained(folder)."
)
