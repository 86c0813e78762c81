"""Projector + causal LM: a contrastive embedding becomes N visual tokens spliced into the LM input.

The projector is the authors' ``mlp2x_gelu`` (Linear(d→H), GELU, Linear(H→H)). In ``repeat`` mode the
one global embedding is projected once and repeated N times, which equals the public code's
"repeat 576 times, then MLP" because the MLP acts per token. ``expand`` mode instead makes the last
layer emit N·H values, i.e. N distinct tokens (an ablation, not in the papers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Projector(nn.Module):
    def __init__(self, embed_dim: int, hidden_size: int, num_tokens: int = 1, mode: str = "repeat") -> None:
        super().__init__()
        self.embed_dim, self.hidden_size, self.num_tokens, self.mode = embed_dim, hidden_size, num_tokens, mode
        out = hidden_size * (num_tokens if mode == "expand" else 1)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, out))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, d) embeddings -> (B, N, H) visual tokens."""
        tokens = self.mlp(embeddings)
        if self.mode == "expand":
            return tokens.view(embeddings.shape[0], self.num_tokens, self.hidden_size)
        return tokens.unsqueeze(1).expand(-1, self.num_tokens, -1)


class VisualLM(nn.Module):
    """Wraps a (possibly PEFT-wrapped) HF causal LM and a :class:`Projector`.

    ``image_mask`` (B, L) marks the N placeholder positions of each sample that carries an image;
    their input embeddings are replaced by the projected visual tokens.
    """

    def __init__(self, llm: nn.Module, projector: Projector) -> None:
        super().__init__()
        self.llm = llm
        self.projector = projector

    def _base(self) -> Any:
        # PEFT injects LoRA layers in place, so the base model's decoder already includes them.
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def embed_inputs(
        self, input_ids: torch.Tensor, image_mask: torch.Tensor, embeddings: torch.Tensor | None
    ) -> torch.Tensor:
        text = self._base().get_input_embeddings()(input_ids)
        if embeddings is None:
            if image_mask.any():
                raise ValueError("image_mask marks visual positions but no embeddings were given")
            return text
        visual = self.projector(embeddings.to(self.projector.mlp[0].weight.dtype))
        has_image = image_mask.any(dim=1)
        visual = visual[has_image].reshape(-1, visual.shape[-1]).to(text.dtype)
        if visual.shape[0] != int(image_mask.sum()):
            raise ValueError(
                f"image_mask has {int(image_mask.sum())} visual positions, projector gave {visual.shape[0]} tokens"
            )
        return text.masked_scatter(image_mask.unsqueeze(-1), visual)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_mask: torch.Tensor,
        embeddings: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Return the summed next-token loss over answer tokens and their count.

        The LM head runs only on positions whose next token is an answer token: the 49k-way head is a
        large share of a 135M model's compute, and prompt positions carry no loss anyway.
        """
        inputs_embeds = self.embed_inputs(input_ids, image_mask, embeddings)
        base = self._base()
        hidden = base.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        logits = base.get_output_embeddings()(hidden[:, :-1][keep])
        loss_sum = nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
        return {"loss_sum": loss_sum, "n_tokens": keep.sum()}


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters that train (the projector in stage 1): keeps checkpoints small."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
