"""Instruction encoders (chapter 04): tokenizers, BERT-style encoders, pooling, a tiny decoder.

Reference implementations that later chapters import once chapter 04 has built them:

* tokenization lives in :mod:`course_utils.tokenization` (:func:`train_wordpiece`), the
  world's corpus and tokenizer in :mod:`course_utils.world.vocabulary`;
* :func:`attention_mask_from_ids` and :func:`mean_pool` — the padding mask of a batch and
  the masked mean over its real tokens (padding never changes the result);
* :func:`small_bert_config`, :class:`TextEncoder`, :class:`TextClassifier` — a small
  ``BertModel`` that always receives its attention mask;
* :func:`load_minilm`, :func:`minilm_tokenizer` and :func:`embed_sentences` — the real
  all-MiniLM-L6-v2, offline, checksum verified, and normalised sentence embeddings;
  :class:`FrozenTextFeatures` (:func:`minilm_features`) — its token features, computed once
  per distinct instruction;
* :func:`small_gpt2_config`, :func:`lm_batch`, :func:`lm_loss`,
  :func:`next_token_accuracy`, :func:`greedy_generate` — a tiny causal decoder (GPT-2
  architecture) and the plain greedy loop that generates with it.

Bad input (texts that are not a non-empty list of strings, masks whose shape does not
match) raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils.tokenization import check_texts

#: The label of positions a language-model loss ignores (PyTorch's and HF's convention).
IGNORE_INDEX = -100


# ---- validation ----------------------------------------------------------------------


def _check_ids(input_ids, name: str = "input_ids") -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"{name} must be a (B, T) tensor of token ids, got {got}")
    if input_ids.dtype.is_floating_point:
        raise ValueError(f"{name} must hold integer token ids, got dtype {input_ids.dtype}")


def _check_mask(attention_mask, shape, name: str = "attention_mask") -> None:
    if not isinstance(attention_mask, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(attention_mask).__name__}")
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(attention_mask.shape)}, expected {tuple(shape)} "
            "(one entry per token of the batch)"
        )


# ---- masks and pooling -------------------------------------------------------------


def attention_mask_from_ids(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The Hugging Face ``attention_mask`` of a padded batch: 1 at real tokens, 0 at padding.

    ``(B, T)`` long, like a tokenizer returns it (chapter 02's ``padding_mask`` is the same
    information with two broadcast axes for the attention scores).

    Built in chapter 04, "2. Batches: padding, truncation and the attention mask".
    """
    _check_ids(input_ids)
    return (input_ids != pad_id).long()  # (B, T)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``hidden`` (B, T, D) over the real tokens of each row -> (B, D).

    Padding positions get weight 0 and the sum is divided by the number of real tokens,
    so adding padding never changes the result (Sentence-BERT's pooling).

    Built in chapter 04, "4. A small BERT-style encoder and masked mean pooling".
    """
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
        got = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
        raise ValueError(f"hidden must be a (B, T, D) tensor, got {got}")
    _check_mask(attention_mask, hidden.shape[:2])
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)  # (B, D)


# ---- a small BERT-style encoder ------------------------------------------------------


def small_bert_config(
    vocab_size: int,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 64,
    pad_token_id: int = 0,
    dropout: float = 0.0,
):
    """A ``BertConfig`` for a small encoder (BERT-base: 768 wide, 12 layers, 12 heads).

    Used in chapter 04, "4. A small BERT-style encoder and masked mean pooling"."""
    from transformers import BertConfig

    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if hidden_size % num_attention_heads:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
        )
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )


class TextEncoder(nn.Module):
    """A ``BertModel`` that always gets its attention mask: ``(B, T) -> (B, T, D)``.

    Without an explicit mask, the mask is built from ``config.pad_token_id`` (the seed's
    bug was to call BERT on padded ids with no mask at all).

    Introduced in chapter 04, "4. A small BERT-style encoder and masked mean pooling".
    """

    def __init__(self, config):
        super().__init__()
        from transformers import BertModel

        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        _check_ids(input_ids)
        if attention_mask is None:
            attention_mask = attention_mask_from_ids(input_ids, self.config.pad_token_id)
        _check_mask(attention_mask, input_ids.shape)
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state  # (B, T, D)


class TextClassifier(nn.Module):
    """Encoder, masked mean pooling and a linear head: ``(B, T) -> logits (B, A)``.

    Introduced in chapter 04, "4. A small BERT-style encoder and masked mean pooling"."""

    def __init__(self, config, num_labels: int):
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        self.encoder = TextEncoder(config)
        self.head = nn.Linear(config.hidden_size, num_labels)

    def embed(self, input_ids, attention_mask=None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = attention_mask_from_ids(input_ids, self.encoder.config.pad_token_id)
        return mean_pool(self.encoder(input_ids, attention_mask), attention_mask)  # (B, D)

    def forward(self, input_ids, attention_mask=None) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))  # (B, A)


# ---- the pretrained encoder ----------------------------------------------------------


def load_minilm(device=None):
    """``(tokenizer, model)`` of all-MiniLM-L6-v2, from the local package, checksum verified.

    The model is a ``BertModel`` (6 layers, 384 wide) in ``eval()`` mode on ``device``.

    Used in chapter 04, "5. A real pretrained encoder, offline".
    """
    from transformers import AutoModel, AutoTokenizer

    from course_utils.assets import minilm_dir

    path = minilm_dir(verify=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    if device is not None:
        model.to(device)
    return tokenizer, model


def minilm_tokenizer():
    """all-MiniLM-L6-v2's tokenizer alone, from the local package (no checksum pass: the
    weights are verified where they are loaded, by :func:`load_minilm`).

    Used in chapter 09, "6. Generalisation (FAQ 9.3)"."""
    from transformers import AutoTokenizer

    from course_utils.assets import minilm_dir

    return AutoTokenizer.from_pretrained(minilm_dir(verify=False))


def _hidden(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    return output[0]


@torch.inference_mode()
def embed_sentences(
    texts, tokenizer, model, batch_size: int = 64, max_length: int = 64, normalize: bool = True
) -> torch.Tensor:
    """Sentence embeddings ``(N, D)``: tokenize with padding, encode WITH the mask, mean-pool.

    With ``normalize=True`` rows have unit length, so ``a @ b.T`` is cosine similarity.
    Works with MiniLM (D = 384) and with a :class:`TextEncoder` or :class:`TextClassifier`.

    Used in chapter 04, "5. A real pretrained encoder, offline".
    """
    texts = check_texts(texts)
    if isinstance(model, TextClassifier):
        model = model.encoder
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True,
            max_length=max_length, return_tensors="pt",
        )  # fmt: skip
        ids = batch["input_ids"].to(device)  # (b, T)
        mask = batch["attention_mask"].to(device)  # (b, T)
        hidden = _hidden(model(input_ids=ids, attention_mask=mask))  # (b, T, D)
        out.append(mean_pool(hidden, mask).float().cpu())  # (b, D)
    model.train(was_training)
    emb = torch.cat(out)  # (N, D)
    return nn.functional.normalize(emb, dim=-1) if normalize else emb


class FrozenTextFeatures:
    """A frozen pretrained encoder's token features, computed once per distinct instruction.

    ``features(input_ids, attention_mask) -> (B, T, D)``: the encoder's last hidden state
    for each real token, zeros at padding. The encoder never trains, so the features of an
    instruction never change: each distinct instruction (its token ids up to the padding)
    is encoded once, on first sight, and looked up afterwards. Training then costs a
    dictionary lookup per example instead of a 22 M-parameter forward pass (the world's
    120,000 training questions have about 9,300 distinct instructions).

    Deliberately not an ``nn.Module``: a model that holds one does not save MiniLM's
    weights in its state dict. ``encoder`` defaults to all-MiniLM-L6-v2 (loaded on first
    use); ``cls_token_id`` is checked on every batch, so ids from another tokenizer fail
    with a clear error instead of producing nonsense features.

    Used in chapter 09, "6. Generalisation (FAQ 9.3)".
    """

    def __init__(self, encoder=None, cls_token_id: int | None = None, batch_size: int = 256):
        self._encoder = encoder
        self.cls_token_id = cls_token_id
        self.batch_size = batch_size
        self.cache: dict[tuple[int, ...], torch.Tensor] = {}

    @property
    def encoder(self):
        if self._encoder is None:
            tokenizer, self._encoder = load_minilm()
            self.cls_token_id = tokenizer.cls_token_id
        return self._encoder

    @property
    def dim(self) -> int:
        return self.encoder.config.hidden_size

    def __len__(self) -> int:
        return len(self.cache)

    @torch.inference_mode()
    def _encode(self, keys: list[tuple[int, ...]], device) -> None:
        encoder = self.encoder.to(device)
        keys = sorted(keys, key=len)  # batches of similar length: little padding to compute
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            longest = max(map(len, chunk))
            ids = torch.zeros(len(chunk), longest, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, key in enumerate(chunk):
                ids[i, : len(key)] = torch.tensor(key)
                mask[i, : len(key)] = 1
            hidden = _hidden(encoder(input_ids=ids.to(device), attention_mask=mask.to(device)))
            hidden = hidden.float().cpu()  # (b, longest, D)
            for i, key in enumerate(chunk):
                self.cache[key] = hidden[i, : len(key)].clone()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        _check_ids(input_ids)
        _check_mask(attention_mask, input_ids.shape)
        encoder = self.encoder  # sets cls_token_id when loaded lazily
        rows, masks = input_ids.cpu(), attention_mask.cpu().bool()
        if self.cls_token_id is not None and not bool((rows[:, 0] == self.cls_token_id).all()):
            raise ValueError(
                f"input_ids do not come from the pretrained encoder's tokenizer (every row must "
                f"start with its [CLS] id {self.cls_token_id}, got {rows[:, 0].unique().tolist()[:5]})")
        keys = [tuple(r[m].tolist()) for r, m in zip(rows, masks)]
        missing = [k for k in dict.fromkeys(keys) if k not in self.cache]
        if missing:
            self._encode(missing, next(encoder.parameters()).device)
        out = torch.zeros(*input_ids.shape, self.dim)  # (B, T, D)
        for i, key in enumerate(keys):
            out[i, masks[i]] = self.cache[key]
        return out.to(input_ids.device)

    def warm(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, chunk: int = 4096) -> int:
        """Encode every distinct instruction of a split now; returns the cache size."""
        for start in range(0, len(input_ids), chunk):
            self(input_ids[start : start + chunk], attention_mask[start : start + chunk])
        return len(self.cache)


_SHARED: dict[str, FrozenTextFeatures] = {}


def minilm_features() -> FrozenTextFeatures:
    """The one shared :class:`FrozenTextFeatures` of all-MiniLM-L6-v2 (one cache per process).

    Used in chapter 09, "6. Generalisation (FAQ 9.3)"."""
    if "minilm" not in _SHARED:
        _SHARED["minilm"] = FrozenTextFeatures()
    return _SHARED["minilm"]


def group_similarity(emb: torch.Tensor, groups) -> dict:
    """Mean cosine similarity of pairs in the same group vs in different groups.

    ``emb`` (N, D) unit rows; ``groups`` N labels. Pairs of a row with itself are left out.
    Returns ``{"same", "different", "margin"}``.

    Used in chapter 04, "5. A real pretrained encoder, offline".
    """
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
        raise ValueError("emb must be a (N, D) tensor")
    groups = list(groups.tolist() if isinstance(groups, torch.Tensor) else groups)
    index = {name: i for i, name in enumerate(dict.fromkeys(groups))}
    g = torch.tensor([index[x] for x in groups])
    if len(g) != len(emb):
        raise ValueError(f"groups has {len(g)} labels for {len(emb)} embeddings")
    sim = emb @ emb.T  # (N, N)
    same = g[:, None] == g[None, :]
    off = ~torch.eye(len(emb), dtype=torch.bool)
    if not (same & off).any() or not (~same).any():
        raise ValueError("groups needs at least two groups and a group with two members")
    s, d = sim[same & off].mean().item(), sim[~same].mean().item()
    return {"same": s, "different": d, "margin": s - d}


# ---- a tiny causal decoder -----------------------------------------------------------


#: The width of all-MiniLM-L6-v2's token features and sentence embeddings.
MINILM_DIM = 384

#: GPT-2's GELU (its tanh approximation) as PyTorch's one fused kernel: the same function as
#: GPT-2's default "gelu_new", which transformers writes out in Python (eight tensor ops per
#: call); a tiny decoder's training step is about a fifth faster with it (chapter 10's captioner:
#: 65 -> 53 ms).
GPT2_ACTIVATION = "gelu_pytorch_tanh"


def small_gpt2_config(
    vocab_size: int,
    bos_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_positions: int = 64,
):
    """A ``GPT2Config`` for a tiny decoder; generation ids are set BEFORE the model is built.

    Used in chapter 04, "3. Encoder or decoder?"."""
    from transformers import GPT2Config

    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    return GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
        n_head=n_head, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
        pad_token_id=pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        activation_function=GPT2_ACTIVATION,
    )  # fmt: skip


def lm_batch(texts, tokenizer, max_length: int = 48) -> dict:
    """Language-model data: ``input_ids``, ``attention_mask`` and ``labels`` (all (N, T)).

    ``labels[:, t]`` is the token at ``t + 1`` (the next token), ``IGNORE_INDEX`` where
    there is none (the last position and padding). Each text is ``[CLS] text [SEP]``:
    ``[CLS]`` plays beginning-of-sequence, ``[SEP]`` end-of-sequence.

    Used in chapter 04, "3. Encoder or decoder?".
    """
    texts = check_texts(texts)
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (N, T)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, :-1] = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: ``logits`` (B, T, V), ``labels`` (B, T) already shifted.

    Used in chapter 04, "3. Encoder or decoder?"."""
    if logits.dim() != 3 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"lm_loss expects logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    return nn.functional.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX
    )


@torch.inference_mode()
def next_token_accuracy(model, data: dict, batch_size: int = 256) -> float:
    """How often the argmax of the logits is the next token (positions with a label only).

    Used in chapter 04, "3. Encoder or decoder?"."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hit = total = 0
    for start in range(0, len(data["labels"]), batch_size):
        sl = slice(start, start + batch_size)
        out = model(input_ids=data["input_ids"][sl].to(device),
                    attention_mask=data["attention_mask"][sl].to(device))  # fmt: skip
        logits = out.logits if hasattr(out, "logits") else out  # (b, T, V)
        labels = data["labels"][sl].to(device)
        keep = labels != IGNORE_INDEX
        hit += (logits.argmax(-1)[keep] == labels[keep]).sum().item()
        total += keep.sum().item()
    model.train(was_training)
    return hit / max(total, 1)


def unigram_accuracy(train: dict, test: dict) -> float:
    """The baseline: always predict the most frequent next token of ``train``.

    Used in chapter 04, "3. Encoder or decoder?"."""
    labels = train["labels"][train["labels"] != IGNORE_INDEX]
    top = torch.bincount(labels).argmax()
    test_labels = test["labels"][test["labels"] != IGNORE_INDEX]
    return (test_labels == top).float().mean().item()


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompt: str, max_new_tokens: int = 30) -> str:
    """Continue ``prompt`` one token at a time, always taking the most likely next token.

    Starts from ``[CLS] prompt`` (no ``[SEP]``: the text is not finished) and stops at
    ``[SEP]`` (end of sequence) or after ``max_new_tokens``. Returns the decoded text.

    Used in chapter 04, "3. Encoder or decoder?".
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids = [tokenizer.cls_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    limit = getattr(model.config, "n_positions", None) or 10**9
    for _ in range(max_new_tokens):
        if len(ids) >= limit:
            break
        x = torch.tensor([ids], device=device)  # (1, t)
        logits = model(input_ids=x).logits[0, -1]  # (V,) the scores of the NEXT token
        nxt = int(logits.argmax())
        if nxt == tokenizer.sep_token_id:
            break
        ids.append(nxt)
    model.train(was_training)
    return tokenizer.decode(ids, skip_special_tokens=True)
