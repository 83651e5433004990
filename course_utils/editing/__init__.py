"""Chapter 12's instruction-driven editing: two editors, one judged by the other's truth.

==================  =================================================================
``data``            edit programs as slot labels, scenes as cell labels, splits as tensors
``parser``          the instruction encoder (learned queries over the words); the parser
``perception``      the scene reader: each cell's shape, colour and size, and the style
``unet``            the end-to-end editor: a U-Net whose blocks FiLM reads the instruction into
``train``           one loop for the three models, their losses, running and reading
``program_editor``  editor 1: parse, perceive, let the world's renderer execute
``metrics``         pixel errors, error inside and outside the edited cells, edit success,
                    directional similarity
``pretrained``      the shipped editors: ``edit``, ``program_edit``, ``perceive``; reproduce
==================  =================================================================

``parser``, ``perception``, ``unet`` and ``metrics`` are sized by their caller and never
import the world; ``data``, ``train``, ``program_editor`` and ``pretrained`` read it.
"""
