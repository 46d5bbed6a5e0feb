"""A tiny randomly initialised FLUX.1 pipeline in the real on-disk layout, for tests on CPU.

Every component is the class the published FLUX.1 checkpoints use (FluxTransformer2DModel, AutoencoderKL,
CLIPTextModel + CLIPTokenizer, T5EncoderModel + T5TokenizerFast, FlowMatchEulerDiscreteScheduler), with
tiny sizes and tokenizers trained here with the ``tokenizers`` library, saved with ``save_pretrained``.
flux-service then loads it through exactly its production code (``FluxPipeline.from_pretrained`` with
``local_files_only=True``). The images are noise, but the shapes, the seeds and the batching are real.

The pipeline is built once per test session (about a second) and copied into each models folder asked for.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

Variant = Literal["schnell", "dev"]
REPO_IDS: dict[Variant, str] = {
    "schnell": "black-forest-labs/FLUX.1-schnell",
    "dev": "black-forest-labs/FLUX.1-dev",
}
HUB_REVISION = "0000000000000000000000000000000000000000"

# Short sentences of the kind flux-service is asked to draw; the tokenizers learn their words.
CORPUS = [
    "a red cube on a plain grey background, studio lighting, front view",
    "a tall blue cylinder, three quarter view from the left, product photo",
    "a medieval knight helmet with a golden crest, back view, high detail",
    "a wooden chair with four legs, side view, soft shadows, white background",
    "a green ceramic vase, top view, orthographic, centred, isolated object",
    "a yellow rubber duck toy, turnaround sheet, consistent lighting",
    "an old brass lantern, game asset, pbr materials, neutral background",
    "the quick brown fox jumps over the lazy dog 0123456789",
]

_built: dict[Variant, Path] = {}


def build_tiny_flux(models_dir: Path, variant: Variant = "schnell", *, hub_cache: bool = False) -> Path:
    """Put a tiny FLUX.1 pipeline under ``models_dir`` where flux-service looks for ``variant``.

    ``models/black-forest-labs/FLUX.1-schnell/`` (a plain folder), or with ``hub_cache`` the Hugging Face
    cache layout ``models/hub/models--black-forest-labs--FLUX.1-schnell/snapshots/<rev>/`` that
    ``scripts/download-models`` writes. Returns the folder holding ``model_index.json``. ``dev`` has
    guidance embeddings, as FLUX.1-dev does.
    """
    source = _built.get(variant)
    if source is None:
        source = Path(tempfile.mkdtemp(prefix=f"tiny-flux-{variant}-")) / "pipeline"
        _save_pipeline(source, guidance_embeds=variant == "dev")
        _built[variant] = source
    repo_id = REPO_IDS[variant]
    if hub_cache:
        cache = models_dir / "hub" / f"models--{repo_id.replace('/', '--')}"
        target = cache / "snapshots" / HUB_REVISION
        (cache / "refs").mkdir(parents=True, exist_ok=True)
        (cache / "refs" / "main").write_text(HUB_REVISION)
    else:
        target = models_dir / repo_id
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def _save_pipeline(folder: Path, *, guidance_embeds: bool) -> None:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)  # the same tiny weights in every session
    clip_tokenizer = train_clip_tokenizer()
    t5_tokenizer = train_t5_tokenizer()
    hidden = 32
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tokenizer),
            hidden_size=hidden,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=hidden,
            bos_token_id=clip_tokenizer.bos_token_id,
            eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id,
        )
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tokenizer),
            d_model=hidden,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            pad_token_id=t5_tokenizer.pad_token_id,
            eos_token_id=t5_tokenizer.eos_token_id,
        )
    )
    # Four blocks, as in FLUX's VAE: 8× downsampling, so the transformer packs 16×16 pixels per token.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * 4,  # latent channels × the 2×2 packing
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=hidden,
        pooled_projection_dim=hidden,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    pipeline = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)


def train_clip_tokenizer():
    """A byte-level BPE with CLIP's pre-tokenisation and end-of-word marks, trained on CORPUS."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    bos, eos = "<|startoftext|>", "<|endoftext|>"
    tokenizer = Tokenizer(models.BPE(unk_token=eos, end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[bos, eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    model = _model_json(tokenizer)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return CLIPTokenizer(vocab=model["vocab"], merges=merges, model_max_length=77)


def train_t5_tokenizer():
    """A SentencePiece-style unigram with T5's ids (<pad> 0, </s> 1, <unk> 2), trained on CORPUS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    vocab = [(piece, float(score)) for piece, score in _model_json(tokenizer)["vocab"]]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=512)


def _model_json(tokenizer) -> dict:
    import json

    return json.loads(tokenizer.to_str())["model"]
