"""What shrinking scores, heals and judges by, per task: an encoder's mean-pooled sentence
embedding, a decoder's next-token distribution. Pruning and healing call these and never ask
which task they serve."""

import math

import torch

from ..tasks import Task

_BATCH = 16


def pooled(module, batch: dict) -> torch.Tensor:
    hidden = module(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class Embedding:
    """Feature extraction: the sentence embedding, judged by cosine to the teacher's."""

    metric, best = "cosine", 1.0

    @staticmethod
    def encode(tokenizer, lines: list[str], max_tokens: int = 128) -> dict:
        return tokenizer(lines, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")

    @staticmethod
    def importance(module, batch: dict) -> torch.Tensor:
        return (pooled(module, batch) ** 2).sum()

    def reference(self, teacher, tokenizer, lines: list[str]):
        return self._outputs(teacher, tokenizer, lines)

    def judge(self, reference, student, tokenizer, lines: list[str]) -> float:
        got = self._outputs(student, tokenizer, lines)
        return torch.nn.functional.cosine_similarity(got, reference).mean().item()

    def _outputs(self, module, tokenizer, lines):
        with torch.no_grad():
            return torch.cat([pooled(module, self.encode(tokenizer, lines[i:i + _BATCH])) for i in range(0, len(lines), _BATCH)])


class NextToken:
    """Text generation: the next-token distribution, judged by perplexity on the text (the
    teacher's is where it starts)."""

    metric, best = "perplexity", None

    @staticmethod
    def encode(tokenizer, lines: list[str], max_tokens: int = 128) -> dict:
        # Padded here, at the end: decoder tokenizers often have no pad token, and the mask keeps
        # the padding out of every loss (causal attention never lets a real token see it).
        ids = tokenizer(lines, truncation=True, max_length=max_tokens)["input_ids"]
        width = max(len(x) for x in ids)
        return {"input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids]),
                "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])}

    @staticmethod
    def token_loss(module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed next-token cross-entropy over the real tokens, and how many there were."""
        logits = module(**batch).logits[:, :-1]
        target = batch["input_ids"][:, 1:]
        mask = batch["attention_mask"][:, 1:].to(logits.dtype)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
        return (loss * mask.reshape(-1)).sum(), mask.sum()

    def importance(self, module, batch: dict) -> torch.Tensor:
        total, count = self.token_loss(module, batch)
        return total / count.clamp(min=1)

    def reference(self, teacher, tokenizer, lines: list[str]) -> float:
        return self.judge(None, teacher, tokenizer, lines)

    def judge(self, reference, student, tokenizer, lines: list[str]) -> float:
        total = count = 0.0
        with torch.no_grad():
            for i in range(0, len(lines), _BATCH):
                t, c = self.token_loss(student, self.encode(tokenizer, lines[i:i + _BATCH]))
                total, count = total + float(t), count + float(c)
        return math.exp(total / max(count, 1.0))


OBJECTIVES = {Task.FEATURE_EXTRACTION: Embedding(), Task.TEXT_GENERATION: NextToken()}
