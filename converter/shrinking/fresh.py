"""A student of a smaller shape, built fresh: the teacher's config with fewer layers, a narrower
FFN or fewer heads, its transformer layers randomly initialised (seeded) and everything outside
them (embedding tables, their norm, a decoder's final norm and head) copied from the teacher,
whose width it keeps. It knows nothing until a Heal distils the teacher into it: this is the
"train a smaller model to start with" baseline that pruning is measured against.
"""

import copy

import torch

from pocketfit.errors import BadInput

from .families import Family
from .steps import DropLayers, FreshShape


def build(module, family: Family, step: FreshShape) -> tuple[torch.nn.Module, dict]:
    config = copy.deepcopy(module.config)
    before = _shape(config, family)
    total = config.num_hidden_layers
    teacher_layers = list(DropLayers(keep=step.layers).chosen(total)) if step.layers else list(range(total))
    if step.layers:
        if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == total:
            config.layer_types = [config.layer_types[i] for i in teacher_layers]
        config.num_hidden_layers = step.layers
    if step.ffn:
        setattr(config, family.ffn_size, step.ffn)
    if step.heads:
        _set_heads(config, family, step.heads)
    torch.manual_seed(step.seed)
    fresh = type(module)(config).to(next(module.parameters()).dtype).eval()
    own, theirs = fresh.state_dict(), module.state_dict()
    prefix = family.layers + "."
    copied = {k: v for k, v in theirs.items() if not k.startswith(prefix) and k in own and own[k].shape == v.shape}
    fresh.load_state_dict(copied, strict=False)
    return fresh, {"step": step.name, "seed": step.seed, "before": before, "after": _shape(config, family),
                   "teacher_layers": teacher_layers, "copied_from_teacher": len(copied),
                   "initialised_at_random": len([k for k in own if k not in copied])}


def _shape(config, family: Family) -> dict:
    return {"layers": config.num_hidden_layers, "ffn": getattr(config, family.ffn_size) or 4 * config.hidden_size,
            "heads": getattr(config, "pocketfit_attention_heads", None) or config.num_attention_heads}


def _set_heads(config, family: Family, heads: int) -> None:
    if hasattr(config, "pocketfit_attention_heads"):  # a count an earlier pruning left: a fresh config says its own
        del config.pocketfit_attention_heads
    if family.grouped_kv:  # head_dim is the config's own key: the heads keep their size
        groups = config.num_key_value_heads
        if heads % groups and groups % heads:
            raise BadInput(f"{heads} attention heads cannot share the model's {groups} key/value heads: "
                           f"give a multiple or a divisor of {groups}")
        config.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        config.num_key_value_heads = min(groups, heads)
    elif config.hidden_size % heads:  # the head size is hidden_size / heads here
        raise BadInput(f"{heads} attention heads do not divide the hidden size {config.hidden_size}: "
                       f"give a divisor of {config.hidden_size}")
    config.num_attention_heads = heads
