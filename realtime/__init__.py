"""Real-time pipeline: Source -> Segmenter -> Stylizer -> Compositor -> Sink(s).

One file per stage; only `pipeline.py` connects them. The frame format at every boundary is
`realtime.frames.Frame`. Errors raised here are `realtime.errors.StyleCamError` subclasses whose
message names the problem and the fix; only `realtime.cli` prints them and exits non-zero.
"""
