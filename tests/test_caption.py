"""Caption decoder: tiny GPT-2s built in code, fixed random embeddings, the real MiniLM tokenizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.decoders.caption import CaptionDecoder, minilm_tokenizer, top_p_filter
from core.decoders.whole_words import WordLexicon, caption_words
from core.training.caption import train_caption_decoder
from core.training.loop import StageConfig

CAPTIONS = [
    "a red bird sings in the tall tree",
    "waves crash on a rocky shore at night",
    "a dog chases a ball across the park",
    "rain falls softly on the tin roof",
    "children laugh at the birthday party",
    "an old train whistles through the valley",
    "snow covers the quiet mountain village",
    "a violin plays a slow sad melody",
]
TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 32, "prefix_length": 4, "dropout": 0.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; more only wait on each other, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return minilm_tokenizer()


def tiny_decoder(tokenizer, seed: int = 0) -> CaptionDecoder:
    torch.manual_seed(seed)
    return CaptionDecoder.from_tokenizer(tokenizer, **TINY).eval()


def caption_embeddings(count: int = len(CAPTIONS), seed: int = 1) -> torch.Tensor:
    """One fixed random unit vector per caption, standing in for MiniLM embeddings."""
    return F.normalize(torch.randn(count, 384, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.fixture(scope="module")
def trained(tokenizer, tmp_path_factory):
    """A tiny decoder that has learnt to write each caption from its own embedding."""
    decoder = tiny_decoder(tokenizer)
    config = StageConfig(tmp_path_factory.mktemp("caption"), max_steps=80, checkpoint_every=1000, log_every=10)
    result = train_caption_decoder(decoder, CAPTIONS, caption_embeddings(), config, batch_size=8, learning_rate=1e-2)
    return decoder, result


def test_shapes_and_tokenizer(tokenizer):
    decoder = tiny_decoder(tokenizer)
    assert decoder.config.vocab_size == len(tokenizer) == 30522
    tokens = decoder.tokenize(CAPTIONS[:3])
    assert tokens["token_ids"][:, 0].eq(tokenizer.cls_token_id).all()
    logits = decoder(caption_embeddings(3), tokens["token_ids"], tokens["attention_mask"])
    assert logits.shape == (*tokens["token_ids"].shape, 30522)
    loss = decoder.loss(caption_embeddings(3), tokens["token_ids"], tokens["attention_mask"])
    assert loss.ndim == 0 and torch.isfinite(loss)
    # an untrained model is close to uniform over the vocabulary
    assert abs(loss.item() - torch.log(torch.tensor(30522.0)).item()) < 1.0
    captions = decoder.generate(caption_embeddings(2), max_new_tokens=5)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert decoder.generate(caption_embeddings(0)) == []


def test_loss_ignores_padding(tokenizer):
    decoder = tiny_decoder(tokenizer)
    embeddings = caption_embeddings(2)
    alone = decoder.tokenize(CAPTIONS[3:4])  # the short caption by itself: no padding
    padded = decoder.tokenize([CAPTIONS[3], "a much longer caption that forces padding onto the first one"])
    assert padded["attention_mask"][0].eq(0).any()
    logits_alone = decoder(embeddings[:1], alone["token_ids"], alone["attention_mask"])
    logits_padded = decoder(embeddings, padded["token_ids"], padded["attention_mask"])
    length = alone["token_ids"].shape[1]
    torch.testing.assert_close(logits_padded[0, :length], logits_alone[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        decoder.loss(embeddings[:1], alone["token_ids"], alone["attention_mask"]),
        decoder.loss(embeddings[:1], padded["token_ids"][:1], padded["attention_mask"][:1]),
        atol=1e-5,
        rtol=1e-5,
    )


def test_training_memorises_captions(trained):
    decoder, result = trained
    assert result.finished and result.step == 80
    assert result.history[-1]["loss"] < 0.1 * result.history[0]["loss"]
    greedy = decoder.generate(caption_embeddings(), method="greedy")
    assert sum(out == want for out, want in zip(greedy, CAPTIONS, strict=True)) >= 6, greedy
    assert all("##" not in c and "[" not in c for c in greedy)


def test_beam_and_sampling_return_strings(trained):
    decoder, _ = trained
    beam = decoder.generate(caption_embeddings(), method="beam", num_beams=3)
    assert sum(out == want for out, want in zip(beam, CAPTIONS, strict=True)) >= 6, beam
    sampled = decoder.generate(caption_embeddings(), method="sample", temperature=0.7, top_p=0.9, seed=0)
    assert len(sampled) == len(CAPTIONS) and all(isinstance(c, str) and c for c in sampled)


def test_batch_equals_single(trained):
    decoder, _ = trained
    embeddings = caption_embeddings()
    batch = decoder.generate(embeddings[:3], method="beam", num_beams=2)
    assert batch == [decoder.generate(embeddings[i : i + 1], method="beam", num_beams=2)[0] for i in range(3)]


def test_seeded_sampling_is_reproducible(tokenizer):
    decoder = tiny_decoder(tokenizer)  # untrained: samples are long and varied
    embeddings = caption_embeddings(2)
    first = decoder.generate(embeddings, method="sample", max_new_tokens=8, seed=3)
    assert first == decoder.generate(embeddings, method="sample", max_new_tokens=8, seed=3)
    generator = torch.Generator().manual_seed(3)
    assert first == decoder.generate(embeddings, method="sample", max_new_tokens=8, generator=generator)
    assert first != decoder.generate(embeddings, method="sample", max_new_tokens=8, seed=4)


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_save_load_round_trip(trained, tmp_path):
    decoder, _ = trained
    decoder.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists()
    assert list(tmp_path.glob("*.safetensors"))
    assert (tmp_path / "tokenizer" / "tokenizer_config.json").exists()
    loaded = CaptionDecoder.from_pretrained(tmp_path)
    assert loaded.config.n_embd == TINY["n_embd"] and loaded.tokenizer is not None
    embeddings = caption_embeddings()
    assert loaded.generate(embeddings) == decoder.generate(embeddings)
    assert loaded.generate(embeddings, method="sample", seed=5) == decoder.generate(embeddings, method="sample", seed=5)


def test_training_resumes_from_checkpoint(tokenizer, tmp_path):
    steps = 3
    config = StageConfig(tmp_path, max_steps=steps, checkpoint_every=steps, log_every=1)
    first = tiny_decoder(tokenizer, seed=0)
    result = train_caption_decoder(first, CAPTIONS, caption_embeddings(), config, batch_size=4, learning_rate=1e-3)
    assert result.step == steps and (tmp_path / "checkpoints" / f"step-{steps:07d}").is_dir()

    # a differently initialised decoder picks up the saved weights without taking a step
    second = tiny_decoder(tokenizer, seed=1)
    again = train_caption_decoder(second, CAPTIONS, caption_embeddings(), config, batch_size=4, learning_rate=1e-3)
    assert again.step == steps and again.history == []
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)

    longer = StageConfig(tmp_path, max_steps=2 * steps, checkpoint_every=steps, log_every=1)
    resumed = train_caption_decoder(second, CAPTIONS, caption_embeddings(), longer, batch_size=4, learning_rate=1e-3)
    assert resumed.finished and resumed.step == 2 * steps
    assert [h["step"] for h in resumed.history] == [steps + 1, steps + 2, steps + 3]


def test_bad_inputs_raise(tokenizer):
    decoder = tiny_decoder(tokenizer)
    good = caption_embeddings(2)
    with pytest.raises(ValueError, match="method"):
        decoder.generate(good, method="nucleus")
    with pytest.raises(ValueError, match="NaN"):
        decoder.generate(torch.full((2, 384), float("nan")))
    with pytest.raises(ValueError, match=r"\[B, 384\]"):
        decoder.generate(torch.zeros(2, 512))
    with pytest.raises(ValueError, match=r"\[B, 384\]"):
        decoder.generate(torch.zeros(384))
    with pytest.raises(ValueError, match="max_new_tokens"):
        decoder.generate(good, max_new_tokens=1000)
    with pytest.raises(ValueError, match="temperature"):
        decoder.generate(good, method="sample", temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        decoder.generate(good, method="sample", top_p=0.0)
    with pytest.raises(ValueError, match="one embedding per caption"):
        train_caption_decoder(decoder, CAPTIONS, good, StageConfig("unused"), batch_size=2)
    with pytest.raises(ValueError, match="tokenizer"):
        CaptionDecoder(**TINY).generate(good)


@pytest.mark.slow
def test_learns_captions_from_real_minilm_embeddings(tokenizer, text_encoder, tmp_path):
    embeddings = text_encoder.encode(CAPTIONS)
    decoder = tiny_decoder(tokenizer)
    config = StageConfig(tmp_path, max_steps=80, checkpoint_every=1000, log_every=10)
    train_caption_decoder(decoder, CAPTIONS, embeddings, config, batch_size=8, learning_rate=1e-2)
    greedy = decoder.generate(embeddings)
    assert sum(out == want for out, want in zip(greedy, CAPTIONS, strict=True)) >= 6, greedy


# --- whole words ---------------------------------------------------------------------------


def test_caption_words_split_like_the_tokenizer(tokenizer):
    assert caption_words(tokenizer, ["A Fire-truck", "the fire truck's bell"]) == ["'", "-", "a", "bell", "fire", "s", "the", "truck"]


def test_the_word_list_masks_half_words_and_grafted_endings(tokenizer):
    lexicon = WordLexicon(tokenizer, ["semaphore", "turkey", "a"])
    pieces = tokenizer("semaphore", add_special_tokens=False)["input_ids"]  # se ##ma ##ph ##ore
    assert len(pieces) == 4
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    start = lexicon.allowed(torch.tensor([[cls]]), sep)[0]
    assert start[pieces[0]] and start.sum() == 3 and not start[sep]  # three first pieces; no empty caption
    half = lexicon.allowed(torch.tensor([[cls, *pieces[:3]]]), sep)[0]  # "semaph"
    assert half.nonzero().flatten().tolist() == [pieces[3]]  # neither the end nor a new word yet
    turkey = tokenizer("turkey", add_special_tokens=False)["input_ids"]
    whole = lexicon.allowed(torch.tensor([[cls, *turkey]]), sep)[0]
    assert whole[sep] and whole[lexicon.starts].all() and not whole[lexicon.continuation].any()  # no "turkey ##ff"
    assert lexicon.allowed(torch.tensor([[cls, *turkey, sep]]), sep)[0].all()  # a finished row is left alone


def test_the_word_list_leaves_whole_word_captions_as_they_were(trained, tokenizer):
    decoder, _ = trained
    embeddings = caption_embeddings()
    free = {method: decoder.generate(embeddings, method=method, num_beams=3) for method in ("greedy", "beam")}
    decoder.set_words(CAPTIONS)
    try:  # beam scores are the model's own probabilities, not renormalised over the allowed tokens
        assert {method: decoder.generate(embeddings, method=method, num_beams=3) for method in free} == free
    finally:
        decoder.lexicon = None


def random_captions(decoder, count: int) -> list[str]:
    """Captions of an untrained decoder: its random logits string WordPieces together at will."""
    return decoder.generate(caption_embeddings(count, seed=7), method="sample", temperature=1.5, top_p=1.0, seed=0)


def test_an_untrained_decoder_spells_only_whole_known_words_once_it_has_a_word_list(tokenizer, tmp_path):
    decoder = tiny_decoder(tokenizer)
    free = random_captions(decoder, 16)
    known = set(caption_words(tokenizer, CAPTIONS))
    assert any(word not in known for caption in free for word in caption.split())  # the check can fail
    decoder.set_words(CAPTIONS)
    for method in ("greedy", "beam", "sample"):
        captions = decoder.generate(caption_embeddings(16, seed=7), method=method, seed=0, temperature=1.5, top_p=1.0)
        assert all(captions) and all(word in known for caption in captions for word in caption.split()), captions
    decoder.save_pretrained(tmp_path)
    assert (tmp_path / "words.txt").read_text().split() == sorted(known)
    loaded = CaptionDecoder.from_pretrained(tmp_path)
    assert loaded.lexicon.words == sorted(known) and random_captions(loaded, 16) == random_captions(decoder, 16)


def test_a_caption_cut_by_the_length_limit_drops_its_unfinished_word(tokenizer):
    decoder = tiny_decoder(tokenizer)
    decoder.set_words(["semaphore", "a"])
    ids = [tokenizer.cls_token_id, *tokenizer("a semaphore", add_special_tokens=False)["input_ids"]]
    assert decoder._detokenize(ids[:-1]) == "a"
    assert decoder._detokenize(ids) == "a semaphore"


def test_a_vocabulary_pruned_to_the_word_list_writes_the_same_captions(tokenizer, tmp_path):
    decoder = tiny_decoder(tokenizer)
    decoder.set_words(CAPTIONS)
    pruned = decoder.prune_vocabulary(decoder.lexicon.token_ids)
    kept = pruned.config.kept_token_ids
    assert len(kept) == pruned.transformer.wte.weight.shape[0] < 60 and pruned.config.vocab_size == len(tokenizer)
    assert {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id} <= set(kept)
    embeddings = caption_embeddings(16, seed=7)
    for method in ("greedy", "sample"):  # the word list allows only kept tokens, so nothing else could be written
        assert decoder.generate(embeddings, method=method, seed=0, temperature=1.5) == pruned.generate(embeddings, method=method, seed=0, temperature=1.5)
    tokens = decoder.tokenize(CAPTIONS[:3])
    full, small = decoder(embeddings[:3], **tokens), pruned(embeddings[:3], **tokens)
    assert torch.allclose(full[..., list(kept)], small[..., list(kept)], atol=1e-5)  # the kept tokens score as before
    assert torch.isneginf(small[..., tokenizer.mask_token_id]).all() and torch.isfinite(pruned.loss(embeddings[:3], **tokens))
    pruned.save_pretrained(tmp_path)
    loaded = CaptionDecoder.from_pretrained(tmp_path)
    assert loaded.config.kept_token_ids == list(kept) and loaded.transformer.wte.weight.shape[0] == len(kept)
    assert loaded.generate(embeddings, method="beam") == pruned.generate(embeddings, method="beam")
    with pytest.raises(ValueError, match="not in this decoder's pruned vocabulary"):
        pruned.loss(embeddings[:1], **pruned.tokenize(["a purple elephant"]))
    with pytest.raises(ValueError, match="pruned vocabulary"):
        pruned.prune_vocabulary([tokenizer.mask_token_id])  # a dropped row cannot come back
