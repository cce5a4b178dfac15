"""The unconditional model inside a class-conditional one, as a UNet without classes.

A model trained for classifier-free guidance is two models in one: with the null label (its last class, the label
dropped at random during training) it is an unconditional model of the whole data. diffusers' ``UNet2DModel`` adds
the class embedding to the time embedding, ``emb = time_embedding(t) + class_embedding(label)``, and the time
embedding ends in a linear layer; with the label fixed to the null one, its embedding is a constant vector, and
adding it to that layer's bias gives the same function with no class input at all:

    time_embedding.linear_2.bias ← time_embedding.linear_2.bias + class_embedding.weight[null]

The result is a plain unconditional ``UNet2DModel``, which diffusers' ``DDPMPipeline`` samples as it is, equal (to
float rounding) to the conditional model asked with the null label.

    python -m pipelines.training.unconditional --checkpoint runs/fm32-cond-learned/pipeline \\
        --output-dir checkpoints/fashion-mnist-32 --save-fp16
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from diffusers import UNet2DModel

from pipelines.loading import load_pipeline, save_checkpoint
from pipelines.pipeline import DDPMExplorerPipeline


def unconditional_unet(unet: UNet2DModel) -> UNet2DModel:
    """The UNet of ``unet``'s null label, without a class input, in fp32 (``unet`` itself is left as it is).

    Raises:
        ValueError: ``unet`` has no class embedding of the kind this folds (a plain ``nn.Embedding`` of
            ``num_class_embeds`` labels, added to the time embedding).
    """
    config = unet.config
    if not config.num_class_embeds or config.class_embed_type is not None:
        raise ValueError(
            "Only a class-conditional UNet2DModel with an embedding table (num_class_embeds, class_embed_type None) "
            "has a null label to fold into the time embedding."
        )
    null_embedding = unet.class_embedding.weight[config.num_class_embeds - 1].detach()
    folded = UNet2DModel.from_config({**config, "num_class_embeds": None})
    state = {k: v for k, v in unet.state_dict().items() if not k.startswith("class_embedding.")}
    bias = "time_embedding.linear_2.bias"
    state[bias] = (state[bias].double() + null_embedding.double()).to(state[bias].dtype)
    folded.load_state_dict(state)  # copies into fp32 parameters
    return folded.to(unet.device).eval()


def unconditional_pipeline(pipe: DDPMExplorerPipeline) -> DDPMExplorerPipeline:
    """``pipe`` without its classes: its null label's UNet and a copy of its scheduler (the same Σ, learned or
    fixed)."""
    scheduler = type(pipe.scheduler).from_config(copy.deepcopy(dict(pipe.scheduler.config)))
    return DDPMExplorerPipeline(unet=unconditional_unet(pipe.unet), scheduler=scheduler)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a class-conditional pipeline folder")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--save-fp16", action="store_true", help="store the weights in fp16 (they load as fp32)")
    args = p.parse_args(argv)
    pipe = load_pipeline(args.checkpoint)
    folded = unconditional_pipeline(pipe)
    if args.save_fp16:
        folded.unet.half()
    save_checkpoint(folded, args.output_dir)
    print(f"Wrote the unconditional model of {args.checkpoint} (its null label) to {Path(args.output_dir)}.")


if __name__ == "__main__":
    with torch.no_grad():
        main()
