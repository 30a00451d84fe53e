"""Stand-in for tensorrt_llm.builder.BuildConfig."""


class BuildConfig:
    def __init__(self, **settings):
        self.settings = settings
