"""Vocabulary trimming: keep the embedding rows (and a decoder's output-head rows) of the tokens a
corpus uses, and the special tokens, and rebuild the tokenizer over the kept tokens with new,
dense ids.

WordPiece (BERT, MPNet): greedy longest-match-first finds the same pieces in a vocabulary that
holds every piece it used. BPE (GPT-2, RoBERTa, Llama-style decoders): a kept token also keeps
the tokens its merge was made of, all the way down, and only merges whose parts and result are
kept survive; every merge that fired on the corpus is kept, and the lowest-ranked applicable
merge is the same one at every point, so the corpus tokenizes exactly as before. On other text
a word may split into more pieces, or (WordPiece without characters) become [UNK]; `coverage`
counts both.
"""

import copy
import json
import re
from collections import Counter

import torch

from pocketfit.errors import UnsupportedCombination

from .families import Family, get, put
from .steps import TrimVocab

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")  # sentencepiece-style byte fallback


def trim(module, family: Family, step: TrimVocab, tokenizer, corpus: list[str]):
    """Returns the new tokenizer and the step's record; the module's tables are cut in place."""
    kind = _kind(tokenizer)
    vocab: dict[str, int] = tokenizer.get_vocab()
    counts = Counter(i for ids in tokenizer(corpus, add_special_tokens=False)["input_ids"] for i in ids)
    used = set(counts)
    if step.max_tokens is not None:  # the most frequent; ties go to the lower id, so the choice is stable
        used = {i for i, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0]))[:step.max_tokens]}
    config = module.config
    named = {getattr(config, k, None) for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")}
    keep = used | set(tokenizer.all_special_ids) | {i for i in named if isinstance(i, int)}
    if step.characters:  # every word still spells out from single characters (or bytes), never [UNK]
        keep |= {i for t, i in vocab.items() if len(t) == 1 or (t.startswith("##") and len(t) == 3) or _BYTE_TOKEN.fullmatch(t)}
    table = get(module, family.word_embeddings)
    if kind == "bpe":
        state = json.loads(tokenizer.backend_tokenizer.to_str())
        keep |= {t["id"] for t in state["added_tokens"]}
        keep = _merge_closure(state["model"], keep)
    kept = sorted(i for i in keep if i < table.num_embeddings)
    old_to_new = {old: new for new, old in enumerate(kept)}
    _cut_tables(module, family, kept)
    before = config.vocab_size
    config.vocab_size = len(kept)
    _renumber_config(config, old_to_new)
    if getattr(module, "generation_config", None) is not None:
        _renumber_config(module.generation_config, old_to_new)
    by_id = {i: t for t, i in vocab.items()}
    if kind == "bpe":
        new_tokenizer = _rebuild_bpe(tokenizer, state, old_to_new)
    else:
        new_tokenizer = _rebuild_wordpiece(tokenizer, {by_id[old]: new for new, old in enumerate(kept)})
    record = {"step": step.name, "tokens": {"before": before, "after": len(kept)}, "used_by_corpus": len(counts),
              "kept_from_corpus": len(used), "max_tokens": step.max_tokens, "characters_kept": step.characters,
              "tokenizer": kind}
    return new_tokenizer, record


def _kind(tokenizer) -> str:
    if hasattr(tokenizer, "vocab") and not hasattr(tokenizer, "backend_tokenizer"):
        return "wordpiece"  # a slow BERT tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = json.loads(backend.to_str())["model"]["type"] if backend is not None else None
    if model == "WordPiece":
        return "wordpiece"
    if model == "BPE":
        return "bpe"
    raise UnsupportedCombination(f"vocabulary trimming rebuilds WordPiece and BPE tokenizers; "
                                 f"{type(tokenizer).__name__} ({model or 'no tokenizers model'}) is neither")


def _merges(model: dict) -> list[tuple[str, str]]:
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]


def _merge_closure(model: dict, keep: set[int]) -> set[int]:
    """`keep` and every token a kept token's merge is made of, recursively."""
    vocab = model["vocab"]
    made_of: dict[str, tuple[str, str]] = {}
    for a, b in _merges(model):
        made_of.setdefault(a + b, (a, b))
    by_id = {i: t for t, i in vocab.items()}
    pending = [by_id[i] for i in keep if i in by_id]
    tokens = set(pending)
    while pending:
        for part in made_of.get(pending.pop(), ()):
            if part not in tokens and part in vocab:
                tokens.add(part)
                pending.append(part)
    return keep | {vocab[t] for t in tokens}


def _cut_tables(module, family: Family, kept: list[int]) -> None:
    table = get(module, family.word_embeddings)
    head = get(module, family.output_embeddings) if family.output_embeddings else None
    tied = head is not None and head.weight is table.weight
    padding = kept.index(table.padding_idx) if table.padding_idx in kept else None
    new_table = torch.nn.Embedding(len(kept), table.embedding_dim, padding_idx=padding)
    new_table.weight.data.copy_(table.weight.data[kept])
    put(module, family.word_embeddings, new_table)
    if head is None:
        return
    new_head = torch.nn.Linear(head.in_features, len(kept), bias=head.bias is not None)
    if tied:  # one table, as before: the head reads the embedding rows it shares
        new_head.weight = new_table.weight
    else:
        new_head.weight.data.copy_(head.weight.data[kept])
    if head.bias is not None:
        new_head.bias.data.copy_(head.bias.data[kept])
    put(module, family.output_embeddings, new_head)


def _renumber_config(config, old_to_new: dict[int, int]) -> None:
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            setattr(config, key, old_to_new.get(value))
        elif isinstance(value, list):
            setattr(config, key, [old_to_new[i] for i in value if i in old_to_new] or None)


def _rebuild_wordpiece(tokenizer, vocab: dict[str, int]):
    kwargs = {k: v for k, v in tokenizer.init_kwargs.items()
              if k in ("do_lower_case", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "bos_token",
                       "eos_token", "tokenize_chinese_chars", "strip_accents")}
    new = type(tokenizer)(vocab=vocab, **kwargs)
    new.model_max_length = tokenizer.model_max_length
    return new


def _rebuild_bpe(tokenizer, state: dict, old_to_new: dict[int, int]):
    """The tokenizers state with the vocabulary, merges, added tokens and the post-processor's
    special ids renumbered."""
    from tokenizers import Tokenizer

    model = state["model"]
    vocab = {t: old_to_new[i] for t, i in model["vocab"].items() if i in old_to_new}
    model["vocab"] = vocab
    model["merges"] = [[a, b] for a, b in _merges(model) if a in vocab and b in vocab and a + b in vocab]
    state["added_tokens"] = [t | {"id": old_to_new[t["id"]]} for t in state["added_tokens"]]
    state["post_processor"] = _renumber_ids(state.get("post_processor"), old_to_new)
    new = copy.deepcopy(tokenizer)
    new._tokenizer = Tokenizer.from_str(json.dumps(state))
    return new


def _renumber_ids(node, old_to_new: dict[int, int]):
    """Token ids inside a post-processor: TemplateProcessing's special_tokens ids, RoBERTa's
    [token, id] pairs."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [old_to_new[i] for i in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                out[key] = [value[0], old_to_new[value[1]]]
            else:
                out[key] = _renumber_ids(value, old_to_new)
        return out
    if isinstance(node, list):
        return [_renumber_ids(v, old_to_new) for v in node]
    return node


def teacher_ids(student_tokenizer, teacher_tokenizer) -> torch.Tensor | None:
    """For each student token id, the teacher's id of the same token; None when they are the
    same vocabulary. Every trimmed token is one of the teacher's, so the teacher can read the
    student's tokens and its next-token distribution can be read over the student's vocabulary."""
    student, teacher = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if student == teacher:
        return None
    mapping = torch.empty(len(student), dtype=torch.long)
    for token, i in student.items():
        mapping[i] = teacher[token]
    return mapping


def coverage(before, after, texts: list[str]) -> dict[str, float]:
    """How the trimmed tokenizer reads `texts`: the share of words it splits differently from the
    full one, and the share of its tokens that are [UNK]."""
    words = changed = tokens = unknown = 0
    unk = after.unk_token_id
    backend = before.backend_tokenizer
    for text in texts:
        normal = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
        for _, (start, end) in backend.pre_tokenizer.pre_tokenize_str(normal):
            piece = normal[start:end]  # the word as written: a byte-level pre-tokenizer's own piece is re-encoded
            old = before.convert_ids_to_tokens(before(piece, add_special_tokens=False)["input_ids"])
            new_ids = after(piece, add_special_tokens=False)["input_ids"]
            words += 1
            changed += old != after.convert_ids_to_tokens(new_ids)
            tokens += len(new_ids)
            unknown += sum(unk is not None and i == unk for i in new_ids)
    return {"words": words, "words_split_differently": changed / max(words, 1), "unk_rate": unknown / max(tokens, 1)}
