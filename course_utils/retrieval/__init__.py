"""Chapter 11's retrieval: find images by words, by example and by a described change.

==============  =====================================================================
``ranking``     Recall@K (hit or fraction), median rank, mAP and nDCG with several relevant
``search``      exact search in torch; FAISS flat, IVF, HNSW and PQ indexes; the benchmark
``negatives``   NegCLIP's loss (foils as extra columns of the softmax) and foil accuracy
``model``       the retrieval encoder: clip-stage1's encoders, pooling per cell and by queries
``train``       texts and their foils as tensors; NegCLIP fine-tuning
``composed``    composed retrieval: image + change -> target, from sum to TIRG
``evaluate``    relevance from the annotation; text-to-image, foil and composed scores
``pretrained``  the shipped retriever: ``embed_images``, ``embed_texts``, ``compose``, its card
==============  =====================================================================

``ranking``, ``search``, ``negatives``, ``model`` and ``composed`` are sized by their caller
and never import the world; ``train``, ``evaluate`` and ``pretrained`` read the annotation.
"""
