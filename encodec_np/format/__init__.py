"""Bytes on disk and on the wire.

``.ecdc`` files (:mod:`.ecdc`), their language model (:mod:`.lm`) and
arithmetic coder (:mod:`.arithmetic`), and the ``ECST`` code stream of
``encodec-np stream`` (:mod:`.codestream`). Nothing here runs the codec.
"""
