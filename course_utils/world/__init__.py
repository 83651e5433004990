"""The course's world: scenes of coloured shapes and the language that talks about them.

Import the module you need (``from course_utils.world import scenes, questions``):

=================  ==================================================================
``scenes``         objects on a grid, rendering with Pillow, edits of a scene
``augment``        pixel augmentations, each with the annotation of its new image
``phrasings``      noun phrases, places, the templates of captions, queries and edits
``grammar``        the language of questions: cores, frames, synonyms, held-out layers
``programs``       the world's configuration, question programs and their answers
``questions``      question-first scene construction: one correct answer each
``descriptions``   captions, referring expressions, label checks
``edits``          edit instructions, their programs and true targets (chapters 01, 12)
``foils``          true descriptions beside the same words made false (chapter 11)
``clips``          two-frame clips: one object moved, or only the rendering (chapter 14)
``examples``       the raw examples of one split
``handwritten``    questions written by hand, a fixed evaluation set
``data``           the Hugging Face datasets, their splits and their cache
``encoding``       from examples to tensors: pixel values, token ids, labels
``vocabulary``     the world's corpus and its WordPiece tokenizer
=================  ==================================================================

The world depends on nothing else in the course but :mod:`course_utils.tokenization`
and :mod:`course_utils.runtime`; chapter 06 builds its datasets.
"""
