"""Rich media: images, histograms, tables, text, figures, audio, video, curves.

A log call checks its input and copies it on the caller's thread (`polytrack.media.
prepare`), the run's encoder thread (`polytrack.media.encoder`) encodes it (PNG, WAV,
JSON, ...) into the home's blob store and, once the bytes are durable, appends one
`MediaLogged` record to the journal; `polytrack.media.read` lists and decodes them.
"""
