"""Whole-word decoding: a caption may only hold words of a known list, spelled out in WordPieces.

A WordPiece decoder writes a word as a start piece and ``##`` continuations (``pan ##ther``).
Left to itself it can stop half way (``pan ##th`` → "panth") or graft an ending onto another
word (``turkey ##ff ##od ##il``). ``WordLexicon`` keeps every step on a path that spells a known
word: after a word's pieces it allows only continuations that lead to a known word, and a new
word or the end only once the current word is complete. The words are those of the training
captions (split by the tokenizer's own pre-tokenizer, so punctuation counts as a word), saved
beside the decoder as ``words.txt``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

WORDS_FILE = "words.txt"


def caption_words(tokenizer: PreTrainedTokenizerBase, captions: Iterable[str]) -> list[str]:
    """The distinct words of ``captions`` as the tokenizer splits them (lower-cased, punctuation apart), sorted."""
    split = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str
    normalise = tokenizer.backend_tokenizer.normalizer.normalize_str
    return sorted({word for caption in captions for word, _ in split(normalise(caption))})


class WordLexicon:
    """The WordPiece spellings of a list of words, and the tokens each partial word may take next.

    Args:
        tokenizer: the decoder's BERT WordPiece tokenizer.
        words: the allowed words (``caption_words`` of the training captions).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, words: Iterable[str]):
        self.words = sorted({word for word in words if word and not word.isspace()})
        if not self.words:
            raise ValueError("A word list needs at least one word; build it with caption_words(tokenizer, captions).")
        vocab_size = len(tokenizer)
        self.continuation = torch.zeros(vocab_size, dtype=torch.bool)  # (V,) "##" pieces
        for token, index in tokenizer.get_vocab().items():
            self.continuation[index] = token.startswith("##")
        self.continuation_ids = set(self.continuation.nonzero().flatten().tolist())
        self.starts = torch.zeros(vocab_size, dtype=torch.bool)  # (V,) first pieces of known words
        self.complete: set[tuple[int, ...]] = set()
        next_pieces: dict[tuple[int, ...], set[int]] = {}
        for word in self.words:
            pieces = tuple(tokenizer(word, add_special_tokens=False)["input_ids"])
            if not pieces or tokenizer.unk_token_id in pieces or pieces[0] in self.continuation_ids:
                continue  # a word the vocabulary cannot spell is left out
            self.starts[pieces[0]] = True
            self.complete.add(pieces)
            for end in range(1, len(pieces)):
                next_pieces.setdefault(pieces[:end], set()).add(pieces[end])
        self.next_pieces_masks = {word: self._mask(pieces) for word, pieces in next_pieces.items()}  # partial word → (V,)

    @property
    def token_ids(self) -> list[int]:
        """Every token some word of the list is spelled with: all the decoder can write besides the end."""
        return sorted({piece for pieces in self.complete for piece in pieces})

    @classmethod
    def from_file(cls, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> WordLexicon:
        """Reads one word a line (as ``save`` writes them)."""
        return cls(tokenizer, Path(path).read_text(encoding="utf-8").splitlines())

    def save(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(self.words) + "\n", encoding="utf-8")

    def current_word(self, token_ids: list[int]) -> tuple[int, ...]:
        """The pieces of the word that ``token_ids`` (after the start token) end in; empty at the start."""
        start = len(token_ids) - 1
        while start > 1 and token_ids[start] in self.continuation_ids:
            start -= 1
        return tuple(token_ids[max(start, 1) :])

    def allowed(self, token_ids: torch.Tensor, end_token_id: int) -> torch.Tensor:
        """Which next tokens ``[N, V]`` keep each row of ``token_ids [N, T]`` (``[CLS]`` first) on
        known words. A row that already holds ``end_token_id`` is finished and may take anything."""
        rows = token_ids.tolist()
        allowed = torch.zeros(len(rows), len(self.continuation), dtype=torch.bool)
        for index, row in enumerate(rows):
            if end_token_id in row:
                allowed[index] = True
                continue
            word = self.current_word(row)
            if word in self.next_pieces_masks:
                allowed[index] |= self.next_pieces_masks[word]
            if not word or word in self.complete:
                allowed[index] |= self.starts
                allowed[index, end_token_id] = bool(word)  # no empty caption
            if not allowed[index].any():  # a word no path leads to (not produced under the mask): end it
                allowed[index, end_token_id] = True
        return allowed.to(token_ids.device)

    def drop_unfinished_word(self, token_ids: list[int]) -> list[int]:
        """``token_ids`` (``[CLS]`` first, no end token) without a last word left incomplete at the length limit."""
        word = self.current_word(token_ids)
        if word and word not in self.complete:
            return token_ids[: len(token_ids) - len(word)]
        return token_ids

    def _mask(self, pieces: set[int]) -> torch.Tensor:
        mask = torch.zeros(len(self.continuation), dtype=torch.bool)
        mask[list(pieces)] = True
        return mask
