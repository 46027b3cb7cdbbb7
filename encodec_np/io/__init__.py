"""Files in and out.

Audio files (:mod:`.audio`), checkpoint readers and the writer
(:mod:`.checkpoint`, with Meta's ``.th`` through :mod:`.torchfile`) and the
model hub (:mod:`.hub`). Nothing here imports the model.
"""
