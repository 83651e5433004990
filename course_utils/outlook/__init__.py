"""Chapter 14's outlook, measured: explanations, attacks, shortcuts, personalisation, video.

==================  =================================================================
``attribution``     the pointing game, hiding cells, integrated gradients (checked
                    against captum)
``attacks``         FGSM, PGD, a sticker in a free cell, instruction injection
``inputs``          the argument checks both share: images, instructions, answer ids
``shortcut``        a marker that predicts the answer, and what happens without it
``personalise``     textual inversion: a new word learned as one token embedding
``video``           two frames and a change: which object moved, and where
==================  =================================================================
"""
