"""Captions from text embeddings: a small GPT-2 conditioned on prefix tokens (ClipCap-style).

An MLP turns the ``[B, embed_dim]`` embedding into ``prefix_length`` input vectors that the
GPT-2 reads before the caption's tokens; the loss covers only the caption tokens. No GPT-2
tokenizer ships offline, so the vocabulary is the MiniLM BERT WordPiece one: ``[CLS]`` starts a
caption, ``[SEP]`` ends it and ``[PAD]`` fills the rest. The tokenizer is saved with the
weights (``tokenizer/`` beside ``config.json``), so a saved folder is self-contained.

The output layer shares the token embedding matrix, as in ``GPT2LMHeadModel``, but is applied
here: safetensors (as ``ModelMixin.save_pretrained`` writes it) refuses tensors that share
memory, so the body is a ``GPT2Model`` and the tie lives in ``_head``.

A decoder that spells only a word list needs only the rows of that list's pieces:
``prune_vocabulary`` keeps those (``kept_token_ids`` in the config) and the model still reads and
writes the tokenizer's own ids, the others scoring ``-inf``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers import AutoTokenizer, GPT2Config, GPT2Model, PreTrainedTokenizerBase

from ..encoders.text import hub_offline, packaged_minilm_path
from .whole_words import WORDS_FILE, WordLexicon, caption_words

METHODS = ("greedy", "beam", "sample")
TOKENIZER_FOLDER = "tokenizer"


def minilm_tokenizer() -> PreTrainedTokenizerBase:
    """The BERT WordPiece tokenizer of the packaged all-MiniLM-L6-v2 (vocab 30522, offline)."""
    return AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)


def check_embeddings(embeddings: torch.Tensor, embed_dim: int) -> torch.Tensor:
    """Returns ``embeddings`` as a tensor after checking that it is finite, floating and ``[B, embed_dim]``."""
    embeddings = torch.as_tensor(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[1] != embed_dim:
        raise ValueError(
            f"embeddings must be [B, {embed_dim}] (the text encoder's size), got {tuple(embeddings.shape)}; "
            "add a batch dimension with embeddings[None] for one item."
        )
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}.")
    if not torch.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or infinite values; check the encoder's output.")
    return embeddings


def caption_loss(logits: torch.Tensor, token_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over real caption tokens; ``logits[:, t]`` predicts ``token_ids[:, t]``.

    Position 0 (the ``[CLS]`` start token, predicted from the prefix alone) and padding are left out.
    """
    targets = token_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)  # (B, T-1)
    return F.cross_entropy(logits[:, 1:].flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al., 2020): keeps the fewest tokens whose probabilities sum to ``top_p``."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs > top_p  # the mass before the token already reaches top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _saved_words(folder_or_repo: str | Path, local_files_only: bool) -> Path | None:
    """The ``words.txt`` saved beside a decoder, in a folder or a Hub repository; None if there is none."""
    if Path(folder_or_repo).is_dir():
        path = Path(folder_or_repo) / WORDS_FILE
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(folder_or_repo), WORDS_FILE, local_files_only=local_files_only))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


class CaptionDecoder(ModelMixin, ConfigMixin):
    """Text embedding ``[B, embed_dim]`` → caption, through prefix tokens and a small GPT-2.

    Build a new one with ``CaptionDecoder.from_tokenizer(...)`` (which fills in the vocabulary
    and the special token ids) and load a saved one with ``CaptionDecoder.from_pretrained(path)``;
    both attach the tokenizer that ``tokenize`` and ``generate`` need.
    """

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 30522,
        embed_dim: int = 384,
        prefix_length: int = 8,
        prefix_hidden: int | None = None,  # default: prefix_length * n_embd // 2, as in ClipCap
        n_layer: int = 4,
        n_embd: int = 256,
        n_head: int = 4,
        n_positions: int = 64,
        dropout: float = 0.1,
        pad_token_id: int = 0,
        bos_token_id: int = 101,  # [CLS]
        eos_token_id: int = 102,  # [SEP]
        banned_token_ids: tuple[int, ...] = (0, 101, 103),  # [PAD], [CLS], [MASK]: never generated
        kept_token_ids: tuple[int, ...] | None = None,  # the tokenizer ids of the embedding's rows; None: all
    ):
        super().__init__()
        if prefix_length < 1 or prefix_length + 2 > n_positions:
            raise ValueError(f"prefix_length must be in [1, n_positions - 2] = [1, {n_positions - 2}], got {prefix_length}.")
        hidden = prefix_hidden or max(prefix_length * n_embd // 2, n_embd)
        self.prefix = nn.Sequential(
            nn.Linear(embed_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, prefix_length * n_embd),
        )
        rows = vocab_size
        if kept_token_ids is not None:
            kept = torch.as_tensor(list(kept_token_ids), dtype=torch.long)  # (R,)
            if kept.numel() == 0 or kept.unique().numel() != kept.numel() or kept.min() < 0 or kept.max() >= vocab_size:
                raise ValueError(f"kept_token_ids must be distinct token ids in [0, {vocab_size}); build them with prune_vocabulary.")
            rows = kept.numel()
            token_rows = torch.full((vocab_size,), -1, dtype=torch.long).index_copy(0, kept, torch.arange(rows))  # (V,)
            self.register_buffer("_kept_ids", kept, persistent=False)
            self.register_buffer("_token_rows", token_rows, persistent=False)
        gpt_config = GPT2Config(
            vocab_size=rows,
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
        self.transformer = GPT2Model(gpt_config)
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.lexicon: WordLexicon | None = None  # when set, captions hold only its words, whole

    # --- building and saving -------------------------------------------------------------

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase | None = None, **config) -> CaptionDecoder:
        """A new, randomly initialised decoder over ``tokenizer``'s vocabulary (default: MiniLM's).

        ``config`` holds the other ``__init__`` arguments (``n_layer``, ``n_embd``, ``prefix_length``, ...).
        """
        tokenizer = tokenizer or minilm_tokenizer()
        ids = {"pad": tokenizer.pad_token_id, "cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id}
        missing = [name for name, value in ids.items() if value is None]
        if missing:
            raise ValueError(f"The tokenizer needs [CLS], [SEP] and [PAD] tokens (a BERT WordPiece tokenizer); it lacks {missing}.")
        banned = {ids["pad"], ids["cls"]} | ({tokenizer.mask_token_id} if tokenizer.mask_token_id is not None else set())
        decoder = cls(
            vocab_size=len(tokenizer),
            pad_token_id=ids["pad"],
            bos_token_id=ids["cls"],
            eos_token_id=ids["sep"],
            banned_token_ids=tuple(sorted(banned)),
            **config,
        )
        decoder.tokenizer = tokenizer
        return decoder

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """Writes ``config.json`` and safetensors weights, the tokenizer into ``tokenizer/`` and the word list (if any)."""
        self._require_tokenizer()
        super().save_pretrained(save_directory, **kwargs)
        if kwargs.get("is_main_process", True):
            self.tokenizer.save_pretrained(str(Path(save_directory) / TOKENIZER_FOLDER))
            if self.lexicon is not None:
                self.lexicon.save(Path(save_directory) / WORDS_FILE)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> CaptionDecoder:
        """Loads weights, config and the tokenizer saved beside them (in eval mode)."""
        decoder = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        local = Path(pretrained_model_name_or_path).is_dir()
        decoder.tokenizer = AutoTokenizer.from_pretrained(
            str(pretrained_model_name_or_path),
            subfolder=TOKENIZER_FOLDER,
            local_files_only=kwargs.get("local_files_only", local or hub_offline()),
        )
        words = _saved_words(pretrained_model_name_or_path, kwargs.get("local_files_only", local or hub_offline()))
        if words is not None:
            decoder.lexicon = WordLexicon.from_file(decoder.tokenizer, words)
        return decoder

    def prune_vocabulary(self, token_ids: Iterable[int]) -> CaptionDecoder:
        """A copy that keeps only the embedding rows of ``token_ids`` and of the special tokens.

        Captions that use only kept tokens decode as before: with a word list, pass
        ``decoder.lexicon.token_ids``, the only tokens it can write. The tokenizer and word list
        carry over; ids stay the tokenizer's.
        """
        self._require_tokenizer()
        specials = {self.config.pad_token_id, self.config.bos_token_id, self.config.eos_token_id}
        kept = sorted(set(token_ids) | specials)
        rows = self._rows(torch.tensor(kept, dtype=torch.long, device=self.device))  # raises on an id already dropped
        config = {key: value for key, value in self.config.items() if not key.startswith("_")}
        pruned = type(self)(**{**config, "kept_token_ids": tuple(kept)})
        state = self.state_dict()
        state["transformer.wte.weight"] = state["transformer.wte.weight"][rows]
        pruned.load_state_dict(state)
        pruned.to(self.device).train(self.training)
        if self.dtype != pruned.dtype:
            pruned.to(self.dtype)
        pruned.tokenizer, pruned.lexicon = self.tokenizer, self.lexicon
        return pruned

    def set_words(self, captions: list[str]) -> None:
        """From now on, captions are spelled only in the words of ``captions`` (the training captions)."""
        self._require_tokenizer()
        self.lexicon = WordLexicon(self.tokenizer, caption_words(self.tokenizer, captions))

    # --- training --------------------------------------------------------------------------

    @property
    def max_caption_tokens(self) -> int:
        """The longest token sequence (``[CLS]`` and ``[SEP]`` included) that fits after the prefix."""
        return self.config.n_positions - self.config.prefix_length

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Captions → ``token_ids`` and ``attention_mask`` ``[B, T]``, padded, cut to ``max_caption_tokens``."""
        self._require_tokenizer()
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise ValueError("Captions must be a list of strings.")
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_caption_tokens, return_tensors="pt"
        )
        return {"token_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def forward(
        self, embeddings: torch.Tensor, token_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, vocab]`` aligned with ``token_ids``: ``out[:, t]`` predicts ``token_ids[:, t]``."""
        embeddings = self._check_embeddings(embeddings)
        if token_ids.ndim != 2 or token_ids.shape[0] != embeddings.shape[0]:
            raise ValueError(f"token_ids must be [B, T] with B = {embeddings.shape[0]}, got {tuple(token_ids.shape)}.")
        if token_ids.shape[1] > self.max_caption_tokens:
            raise ValueError(f"Captions can be at most {self.max_caption_tokens} tokens; tokenize with decoder.tokenize.")
        if attention_mask is None:
            attention_mask = torch.ones_like(token_ids)
        prefix = self._prefix(embeddings)  # (B, P, E)
        prefix_mask = torch.ones(prefix.shape[:2], dtype=attention_mask.dtype, device=self.device)  # (B, P)
        mask = torch.cat([prefix_mask, attention_mask.to(self.device)], dim=1)  # (B, P+T)
        hidden = self._hidden(prefix, token_ids, mask)[:, self.config.prefix_length - 1 : -1]  # (B, T, E)
        return self._head(hidden)  # (B, T, V)

    def loss(self, embeddings: torch.Tensor, token_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing cross-entropy of the captions given their embeddings (prefix and padding left out)."""
        return caption_loss(self(embeddings, token_ids, attention_mask), token_ids, attention_mask)

    # --- generation ------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        embeddings: torch.Tensor,
        method: str = "greedy",
        max_new_tokens: int | None = None,
        num_beams: int = 4,
        temperature: float = 1.0,
        top_p: float = 0.9,
        length_penalty: float = 1.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """Captions for ``[B, embed_dim]`` embeddings, one string each.

        Args:
            embeddings: finite text embeddings ``[B, embed_dim]``.
            method: ``"greedy"`` (argmax), ``"beam"`` (beam search, ``num_beams`` wide, final scores
                divided by ``length ** length_penalty``) or ``"sample"`` (``temperature`` and nucleus
                ``top_p``; reproducible given ``seed`` or ``generator``).
            max_new_tokens: the longest caption in tokens, ``[SEP]`` included; default: all that fit.

        The model is used in whatever mode it is in; call ``eval()`` first (``from_pretrained`` does).
        """
        # 1. check inputs
        embeddings = self._check_embeddings(embeddings)
        max_new_tokens = self._check_generation_args(method, max_new_tokens, num_beams, temperature, top_p)
        if embeddings.shape[0] == 0:
            return []
        # 2. encode the condition as prefix tokens
        prefix = self._prefix(embeddings)  # (B, P, E)
        # 3. decode
        if method == "beam":
            token_ids = self._beam_search(prefix, max_new_tokens, num_beams, length_penalty)
        else:
            if method == "sample" and generator is None and seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(seed)
            token_ids = self._decode(prefix, max_new_tokens, method == "sample", temperature, top_p, generator)
        # 4. token ids → clean strings
        return [self._detokenize(row) for row in token_ids.tolist()]

    def _decode(self, prefix, max_new_tokens, sample, temperature, top_p, generator) -> torch.Tensor:
        """Greedy or sampled decoding; finished rows are filled with ``[PAD]``."""
        token_ids = torch.full((prefix.shape[0], 1), self.config.bos_token_id, device=prefix.device)  # (B, 1)
        finished = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)  # (B,)
        for _ in range(max_new_tokens):
            logits = self._next_token_logits(prefix, token_ids)  # (B, V)
            if sample:
                probs = top_p_filter(logits / temperature, top_p).softmax(-1)
                device = generator.device if generator is not None else probs.device
                token = torch.multinomial(probs.to(device), 1, generator=generator).squeeze(1).to(probs.device)
            else:
                token = logits.argmax(-1)  # (B,)
            token = token.masked_fill(finished, self.config.pad_token_id)
            token_ids = torch.cat([token_ids, token[:, None]], dim=1)  # (B, t+1)
            finished |= token == self.config.eos_token_id
            if finished.all():
                break
        return token_ids

    def _beam_search(self, prefix, max_new_tokens, num_beams, length_penalty) -> torch.Tensor:
        """Beam search; a finished beam keeps its score and extends with ``[PAD]`` at no cost."""
        batch, beams = prefix.shape[0], num_beams
        prefix = prefix.repeat_interleave(beams, dim=0)  # (B*K, P, E)
        token_ids = torch.full((batch * beams, 1), self.config.bos_token_id, device=prefix.device)  # (B*K, 1)
        scores = torch.zeros(batch, beams, device=prefix.device)  # (B, K) summed log-probabilities
        scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
        finished = torch.zeros(batch * beams, dtype=torch.bool, device=prefix.device)  # (B*K,)
        offsets = torch.arange(batch, device=prefix.device)[:, None] * beams  # (B, 1)
        for _ in range(max_new_tokens):
            logprobs = self._next_token_logits(prefix, token_ids, log_probabilities=True)  # (B*K, V)
            logprobs[finished] = float("-inf")
            logprobs[finished, self.config.pad_token_id] = 0.0
            vocab = logprobs.shape[-1]
            candidates = (scores.reshape(-1, 1) + logprobs).reshape(batch, beams * vocab)  # (B, K*V)
            scores, flat = candidates.topk(beams, dim=-1)  # (B, K)
            rows = (flat // vocab + offsets).reshape(-1)  # (B*K,) the parent beam of each survivor
            token = (flat % vocab).reshape(-1)  # (B*K,)
            token_ids = torch.cat([token_ids[rows], token[:, None]], dim=1)  # (B*K, t+1)
            finished = finished[rows] | (token == self.config.eos_token_id)
            if finished.all():
                break
        lengths = (token_ids[:, 1:] != self.config.pad_token_id).sum(1).clamp(min=1).reshape(batch, beams)
        best = (scores / lengths.float() ** length_penalty).argmax(-1)  # (B,)
        return token_ids[(best + offsets.squeeze(1))]  # (B, t)

    # --- helpers ---------------------------------------------------------------------------

    def _prefix(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Embedding ``[B, D]`` → prefix input vectors ``[B, P, n_embd]``."""
        prefix = self.prefix(embeddings.to(device=self.device, dtype=self.dtype))  # (B, P*E)
        return prefix.reshape(embeddings.shape[0], self.config.prefix_length, self.config.n_embd)

    def _hidden(self, prefix: torch.Tensor, token_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """GPT-2 over ``[prefix; tokens]`` → hidden states ``[B, P+T, E]``."""
        tokens = self.transformer.wte(self._rows(token_ids.to(self.device)))  # (B, T, E)
        inputs = torch.cat([prefix, tokens], dim=1)  # (B, P+T, E)
        return self.transformer(inputs_embeds=inputs, attention_mask=mask, use_cache=False).last_hidden_state

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., E]`` → logits ``[..., V]`` through the output layer tied to the token
        embeddings; with a pruned vocabulary, the dropped tokens score ``-inf``."""
        logits = F.linear(hidden, self.transformer.wte.weight)  # (..., R)
        if self.config.kept_token_ids is None:
            return logits
        every = logits.new_full((*logits.shape[:-1], self.config.vocab_size), float("-inf"))  # (..., V)
        return every.index_copy(-1, self._kept_ids, logits)

    def _rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Tokenizer ids → rows of the token embedding (the same ids unless the vocabulary is pruned)."""
        if self.config.kept_token_ids is None:
            return token_ids
        rows = self._token_rows[token_ids]
        if (rows < 0).any():
            dropped = sorted(set(token_ids[rows < 0].tolist()))[:5]
            raise ValueError(
                f"Tokens {self.tokenizer.convert_ids_to_tokens(dropped) if self.tokenizer else dropped} are not in this "
                "decoder's pruned vocabulary; train on the full decoder (or one pruned to these captions' words)."
            )
        return rows

    def _next_token_logits(self, prefix: torch.Tensor, token_ids: torch.Tensor, log_probabilities: bool = False) -> torch.Tensor:
        """Logits ``[N, V]`` of the token after ``token_ids`` (or their log-probabilities), special
        tokens other than ``[SEP]`` banned, and with a word list, every token that leaves a known word."""
        logits = self._head(self._hidden(prefix, token_ids)[:, -1]).float()  # (N, V)
        logits[:, list(self.config.banned_token_ids)] = float("-inf")
        if log_probabilities:  # before the word mask: a forced piece keeps its own probability
            logits = logits.log_softmax(-1)
        if self.lexicon is not None:
            logits = logits.masked_fill(~self.lexicon.allowed(token_ids, self.config.eos_token_id).to(logits.device), float("-inf"))
        return logits

    def _detokenize(self, ids: list[int]) -> str:
        """Token ids after ``[CLS]`` up to ``[SEP]`` → a string with WordPieces joined."""
        if self.config.eos_token_id in ids:
            ids = ids[: ids.index(self.config.eos_token_id)]
        elif self.lexicon is not None:  # stopped by the length limit, perhaps inside a word
            ids = self.lexicon.drop_unfinished_word(ids)
        ids = ids[1:]
        text = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
        return text.strip()

    def _check_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``check_embeddings`` against this decoder's ``embed_dim``."""
        return check_embeddings(embeddings, self.config.embed_dim)

    def _check_generation_args(self, method, max_new_tokens, num_beams, temperature, top_p) -> int:
        """Validates the decoding settings; returns ``max_new_tokens`` with its default filled in."""
        self._require_tokenizer()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        limit = self.max_caption_tokens - 1  # [CLS] takes one position
        if max_new_tokens is None:
            max_new_tokens = limit
        if not 1 <= max_new_tokens <= limit:
            raise ValueError(f"max_new_tokens must be in [1, {limit}] (n_positions - prefix_length - 1), got {max_new_tokens}.")
        if method == "beam" and (num_beams < 1 or num_beams > self.config.vocab_size):
            raise ValueError(f"num_beams must be between 1 and the vocabulary size, got {num_beams}.")
        if method == "sample" and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}; use method='greedy' for argmax.")
        if method == "sample" and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
        return max_new_tokens

    def _require_tokenizer(self) -> None:
        """Raises unless a tokenizer is attached."""
        if self.tokenizer is None:
            raise ValueError(
                "This CaptionDecoder has no tokenizer; build it with CaptionDecoder.from_tokenizer(...) "
                "or load it with CaptionDecoder.from_pretrained(path)."
            )
