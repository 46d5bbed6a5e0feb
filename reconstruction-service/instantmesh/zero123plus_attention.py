"""Zero123++'s reference attention: the condition image steers every self-attention layer of the UNet.

Before each denoising pass, the condition image's (noised) VAE latent goes through the same UNet at the
same timestep; every self-attention layer (``attn1``) records its input. In the denoising pass each
``attn1`` then attends over its own tokens *and* the recorded condition tokens: the keys and values come
from both, the queries only from the views. Each batch element reads its own record, so the guidance
half that sees the empty condition reads the empty condition's tokens (upstream: ReferenceOnlyAttnProc
and RefOnlyNoisedUNet in zero123plus/pipeline.py; docs/instantmesh.md traces every line).

The processors share one ``ReferenceBank`` instead of passing a mode through ``cross_attention_kwargs``:
diffusers filters those kwargs by the processor's signature, and a bank keeps the UNet call plain.
"""

from __future__ import annotations

import enum
from typing import Any

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


class BankMode(enum.Enum):
    OFF = "off"  # a plain UNet: the bank is neither written nor read
    WRITE = "write"  # the reference pass: each attn1 records its input tokens
    READ = "read"  # the denoising pass: each attn1 also attends over the recorded tokens


class ReferenceBank:
    """The condition tokens of one reference pass, by attention-layer name."""

    def __init__(self) -> None:
        self.mode = BankMode.OFF
        self.tokens: dict[str, torch.Tensor] = {}

    def clear(self) -> None:
        self.mode = BankMode.OFF
        self.tokens.clear()


class MissingReference(RuntimeError):
    """A denoising pass read a layer the reference pass did not record: the two passes diverged."""


class ReferenceAttnProcessor:
    """Self-attention that, in READ mode, takes keys and values from [own tokens, recorded tokens]."""

    def __init__(self, name: str, bank: ReferenceBank) -> None:
        self.name = name
        self.bank = bank
        # The attention itself is diffusers' SDPA processor, as upstream chains AttnProcessor2_0.
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if self.bank.mode is BankMode.WRITE:
            self.bank.tokens[self.name] = context
        elif self.bank.mode is BankMode.READ:
            recorded = self.bank.tokens.pop(self.name, None)  # read once, as upstream's mode "r" pops
            if recorded is None:
                raise MissingReference(f"no reference tokens were recorded for {self.name}")
            context = torch.cat([context, recorded], dim=1)
        return self.inner(attn, hidden_states, context, attention_mask, temb)


def install_reference_attention(unet: UNet2DConditionModel) -> ReferenceBank:
    """Give every ``attn1`` of ``unet`` a reference processor sharing one bank; other layers keep
    plain SDPA attention. Returns the bank that switches them between passes."""
    bank = ReferenceBank()
    processors: dict[str, Any] = {}
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            processors[name] = ReferenceAttnProcessor(name, bank)
        else:
            processors[name] = AttnProcessor2_0()
    unet.set_attn_processor(processors)
    return bank
