"""Vocabulary trimming: keep the embedding rows of the tokens a corpus uses (and the special
tokens), and rebuild the tokenizer over the kept tokens with new, dense ids.

For WordPiece tokenizers (BERT, MPNet) this changes nothing on the corpus itself: greedy
longest-match-first finds the same pieces in a vocabulary that holds every piece it used. On
other text a word may split into more pieces, or become [UNK]; `coverage` counts both.
"""

from collections import Counter

import torch

from pocketfit.errors import UnsupportedCombination

from .families import Family, get, put
from .steps import TrimVocab


def trim(module, family: Family, step: TrimVocab, tokenizer, corpus: list[str]):
    """Returns the new tokenizer and the step's record; the module's table is cut in place."""
    if family.tokenizer != "wordpiece" or not hasattr(tokenizer, "vocab"):
        raise UnsupportedCombination(f"vocabulary trimming rebuilds WordPiece tokenizers; {type(tokenizer).__name__} is not one")
    vocab: dict[str, int] = tokenizer.get_vocab()
    counts = Counter(i for ids in tokenizer(corpus, add_special_tokens=False)["input_ids"] for i in ids)
    used = set(counts)
    if step.max_tokens is not None:  # the most frequent; ties go to the lower id, so the choice is stable
        used = {i for i, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0]))[:step.max_tokens]}
    keep = used | set(tokenizer.all_special_ids)
    if step.characters:  # every word still spells out from single characters, never [UNK]
        keep |= {i for t, i in vocab.items() if len(t) == 1 or (t.startswith("##") and len(t) == 3)}
    kept = sorted(i for i in keep if i < get(module, family.word_embeddings).num_embeddings)
    by_id = {i: t for t, i in vocab.items()}
    new_vocab = {by_id[old]: new for new, old in enumerate(kept)}
    table = get(module, family.word_embeddings)
    padding = kept.index(table.padding_idx) if table.padding_idx in kept else None
    new_table = torch.nn.Embedding(len(kept), table.embedding_dim, padding_idx=padding)
    new_table.weight.data.copy_(table.weight.data[kept])
    put(module, family.word_embeddings, new_table)
    before = module.config.vocab_size
    module.config.vocab_size = len(kept)
    if getattr(module.config, "pad_token_id", None) is not None and module.config.pad_token_id in kept:
        module.config.pad_token_id = kept.index(module.config.pad_token_id)
    new_tokenizer = _rebuild(tokenizer, new_vocab)
    record = {"step": step.name, "tokens": {"before": before, "after": len(kept)}, "used_by_corpus": len(counts),
              "kept_from_corpus": len(used), "max_tokens": step.max_tokens, "characters_kept": step.characters}
    return new_tokenizer, record


def _rebuild(tokenizer, vocab: dict[str, int]):
    kwargs = {k: v for k, v in tokenizer.init_kwargs.items()
              if k in ("do_lower_case", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "bos_token",
                       "eos_token", "tokenize_chinese_chars", "strip_accents")}
    new = type(tokenizer)(vocab=vocab, **kwargs)
    new.model_max_length = tokenizer.model_max_length
    return new


def coverage(before, after, texts: list[str]) -> dict[str, float]:
    """How the trimmed tokenizer reads `texts`: the share of words it splits differently from the
    full one, and the share of its tokens that are [UNK]."""
    words = changed = tokens = unknown = 0
    unk = after.unk_token_id
    backend = before.backend_tokenizer
    for text in texts:
        normal = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
        for word in backend.pre_tokenizer.pre_tokenize_str(normal):
            piece = word[0]
            old = before.convert_ids_to_tokens(before(piece, add_special_tokens=False)["input_ids"])
            new_ids = after(piece, add_special_tokens=False)["input_ids"]
            words += 1
            changed += old != after.convert_ids_to_tokens(new_ids)
            tokens += len(new_ids)
            unknown += sum(i == unk for i in new_ids)
    return {"words": words, "words_split_differently": changed / max(words, 1), "unk_rate": unknown / max(tokens, 1)}
