"""Chapter 10's captioning: a model that describes an image as the instruction asks.

==============  =====================================================================
``model``       the captioner: image tokens as a prefix of a small causal decoder
``decoding``    greedy decoding with and without the KV cache, beam search, sampling
``data``        description splits as tensors; token ids back to the world's spelling
``train``       teacher forcing (``fit``) and describing a split
``ngram``       BLEU-4 (sacreBLEU) and CIDEr-D (the course's copy of COCO's scorer)
``grounding``   grounded metrics from the annotation: object F1, CHAIR, binding errors
``pretrained``  the shipped captioner: ``describe(images, instructions)``, its card
==============  =====================================================================

``model`` and ``decoding`` are sized by their caller and never import the world;
``grounding`` reads descriptions back with the world's grammar.
"""
