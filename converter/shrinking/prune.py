"""Structured pruning: whole layers, FFN neurons and attention heads removed, the Linear layers
rebuilt at their new sizes and the config rewritten to match. Importance is measured on the
user's text (batches of token ids), never on the text quality is judged on.
"""

import torch

from .families import Family, get, put
from .steps import CapSequence, DropLayers, PruneFfn, PruneHeads


def drop_layers(module, family: Family, step: DropLayers) -> dict:
    layers = get(module, family.layers)
    keep = step.chosen(len(layers))
    put(module, family.layers, torch.nn.ModuleList([layers[i] for i in keep]))
    for new, i in enumerate(keep):  # a decoder's layers index the KV cache by their own number
        attention = get(layers[i], family.attention)
        if hasattr(attention, "layer_idx"):
            attention.layer_idx = new
    config = module.config
    if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == len(layers):
        config.layer_types = [config.layer_types[i] for i in keep]  # per-layer attention kinds (sliding windows)
    config.num_hidden_layers = len(keep)
    return {"step": step.name, "kept_layers": list(keep), "removed_layers": [i for i in range(len(layers)) if i not in keep]}


def prune_ffn(module, family: Family, step: PruneFfn, batches: list[dict]) -> dict:
    layers = get(module, family.layers)
    total = _outputs(get(layers[0], family.ffn_in))
    count = step.count(total)
    activation = [torch.zeros(total, dtype=torch.float64) for _ in layers]
    state = {"mask": None, "tokens": 0}

    def hook(i):
        def record(_module, inputs):
            mask = state["mask"].unsqueeze(-1).to(inputs[0].dtype)  # padding is not the text
            activation[i] += (inputs[0].abs() * mask).sum(dim=(0, 1)).double()
        return record

    # What the down-projection reads: the activated FFN (times the gate, in gated FFNs).
    handles = [get(layer, family.ffn_out).register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            for batch in batches:
                state["mask"] = batch["attention_mask"]
                state["tokens"] += int(batch["attention_mask"].sum())
                module(**batch)
    finally:
        for handle in handles:
            handle.remove()
    for i, layer in enumerate(layers):
        out = get(layer, family.ffn_out)
        score = activation[i] / max(state["tokens"], 1) * _input_norms(out)
        keep = torch.sort(torch.topk(score, count).indices).values
        for path in filter(None, (family.ffn_in, family.ffn_gate)):
            put(layer, path, _cut(get(layer, path), outputs=keep))
        put(layer, family.ffn_out, _cut(out, inputs=keep))
    setattr(module.config, family.ffn_size, count)
    return {"step": step.name, "ffn_neurons": {"before": total, "after": count}, "tokens_scored": state["tokens"]}


def prune_heads(module, family: Family, step: PruneHeads, batches: list[dict], objective) -> dict:
    """First-order importance of each head: |z_h · dL/dz_h| summed over the text, where z_h is the
    head's slice of the attention output and L the task's objective (`objective(module, batch)`:
    the squared norm of the pooled embedding, or the next-token loss). With grouped-query
    attention, a key/value head and the query heads that share it go or stay together: the
    step's count is of those groups."""
    layers = get(module, family.layers)
    config = module.config
    if family.grouped_kv:
        heads, groups = config.num_attention_heads, config.num_key_value_heads
        size = get(layers[0], family.query).out_features // heads
    else:  # the module, not the config, knows a count an earlier PruneHeads left
        heads, size = _head_count(get(layers[0], family.attention))
        groups = heads
    per_group = heads // groups
    count = step.count(groups)
    if family.shared_head_bias is not None and count != groups:
        raise _unsupported(module, "attention heads", "its layers share one per-head relative position table")
    scores = [torch.zeros(groups, dtype=torch.float64) for _ in layers]
    captured: dict[int, torch.Tensor] = {}

    def pre(i):
        def keep_input(_module, inputs):
            inputs[0].retain_grad()
            captured[i] = inputs[0]
        return keep_input

    handles = [get(layer, family.attention_out).register_forward_pre_hook(pre(i)) for i, layer in enumerate(layers)]
    try:
        for batch in batches:
            module.zero_grad(set_to_none=True)
            objective(module, batch).backward()
            for i, z in captured.items():
                taylor = (z * z.grad).reshape(*z.shape[:-1], groups, per_group * size).sum(-1)  # batch, seq, groups
                scores[i] += taylor.abs().sum(dim=(0, 1)).double().detach()
    finally:
        for handle in handles:
            handle.remove()
        module.zero_grad(set_to_none=True)
    kept = []
    for i, layer in enumerate(layers):
        keep = torch.sort(torch.topk(scores[i], count).indices).values.tolist()
        # Query heads of group g are g*per_group ... (g+1)*per_group - 1 (transformers' repeat_kv).
        query_rows = torch.cat([torch.arange(g * per_group * size, (g + 1) * per_group * size) for g in keep])
        kv_rows = torch.cat([torch.arange(g * size, (g + 1) * size) for g in keep]) if family.grouped_kv else query_rows
        if family.fused_qkv:  # one layer's outputs are [q | k | v], each heads * size wide
            width = heads * size
            put(layer, family.query, _cut(get(layer, family.query), outputs=torch.cat([query_rows + k * width for k in range(3)])))
        else:
            put(layer, family.query, _cut(get(layer, family.query), outputs=query_rows))
            for path in (family.key, family.value):
                put(layer, path, _cut(get(layer, path), outputs=kv_rows))
        put(layer, family.attention_out, _cut(get(layer, family.attention_out), inputs=query_rows))
        _set_head_count(get(layer, family.attention), count, size)
        kept.append(keep)
    if family.grouped_kv:  # the config can say it: head_dim is its own key
        config.head_dim = size
        config.num_attention_heads, config.num_key_value_heads = count * per_group, count
        return {"step": step.name, "heads": {"before": heads, "after": count * per_group},
                "kv_groups": {"before": groups, "after": count}, "kept_groups": kept}
    # transformers' encoder configs derive the head size from hidden_size / heads, so they cannot
    # say "fewer heads of the same size": the modules carry it, and the config records it here.
    config.pocketfit_attention_heads = count
    return {"step": step.name, "heads": {"before": heads, "after": count}, "kept_heads": kept}


def cap_sequence(module, family: Family, step: CapSequence, tokenizer) -> dict:
    if family.position_embeddings is None:  # rotary positions: nothing stored, only the limit changes
        before = module.config.max_position_embeddings
        if step.tokens > before:
            raise _unsupported(module, f"a {step.tokens}-token cap", f"it has only {before} positions")
        module.config.max_position_embeddings = step.tokens
        tokenizer.model_max_length = step.tokens
        return {"step": step.name, "positions": {"before": before, "after": step.tokens}}
    table = get(module, family.position_embeddings)
    rows = step.tokens + family.position_offset
    if rows > table.num_embeddings:
        raise _unsupported(module, f"a {step.tokens}-token cap", f"it has only {table.num_embeddings - family.position_offset} positions")
    new = torch.nn.Embedding(rows, table.embedding_dim, padding_idx=table.padding_idx)
    new.weight.data.copy_(table.weight.data[:rows])
    put(module, family.position_embeddings, new)
    embeddings = get(module, family.position_embeddings.rpartition(".")[0])
    for name in ("position_ids", "token_type_ids"):  # buffers sized for the old table
        buffer = getattr(embeddings, name, None)
        if isinstance(buffer, torch.Tensor) and buffer.dim() == 2:
            embeddings.register_buffer(name, buffer[:, :rows].clone(), persistent=False)
    before = module.config.max_position_embeddings
    module.config.max_position_embeddings = rows
    tokenizer.model_max_length = step.tokens
    return {"step": step.name, "positions": {"before": before - family.position_offset, "after": step.tokens}}


def _head_count(attention) -> tuple[int, int]:
    """(heads, head size) as the attention module holds them: BERT's names, or GPT-2's."""
    if hasattr(attention, "attention_head_size"):
        return attention.num_attention_heads, attention.attention_head_size
    return attention.num_heads, attention.head_dim


def _set_head_count(attention, count: int, size: int) -> None:
    if hasattr(attention, "all_head_size"):
        attention.num_attention_heads, attention.all_head_size = count, count * size
    elif hasattr(attention, "split_size"):  # GPT-2 splits its fused output at split_size
        attention.num_heads, attention.split_size = count, count * size


def _outputs(layer) -> int:
    return layer.out_features if isinstance(layer, torch.nn.Linear) else layer.nf


def _input_norms(layer) -> torch.Tensor:
    """The norm of the weights each input feeds: a Linear's columns, a Conv1D's rows."""
    weight = layer.weight.detach().double()
    return weight.norm(dim=0) if isinstance(layer, torch.nn.Linear) else weight.norm(dim=1)


def _cut(old, outputs=None, inputs=None):
    """`old` (a Linear, or GPT-2's Conv1D, whose weight is stored inputs x outputs) keeping only
    the `outputs` and `inputs` given."""
    linear = isinstance(old, torch.nn.Linear)
    weight = old.weight.data if linear else old.weight.data.t()  # outputs x inputs either way
    if outputs is not None:
        weight = weight[outputs]
    if inputs is not None:
        weight = weight[:, inputs]
    bias = None if old.bias is None else (old.bias.data[outputs] if outputs is not None else old.bias.data)
    if linear:
        new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        new.weight.data.copy_(weight)
    else:
        new = type(old)(weight.shape[0], weight.shape[1])
        new.weight.data.copy_(weight.t())
    if bias is not None:
        new.bias.data.copy_(bias)
    return new


def _unsupported(module, what: str, why: str):
    from pocketfit.errors import UnsupportedCombination

    return UnsupportedCombination(f"cannot prune {what} of {type(module).__name__}: {why}")
