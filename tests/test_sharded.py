"""Sharded weights (diffusers' index and shards): what save_checkpoint writes where weights would pass a Space's
10 MB, loaded back locally and from the Hub, with clear errors for a broken or unsafe index."""

import json

import pytest
import torch
from conftest import make_tiny_unet

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler, loading
from pipelines.loading import SHARD_INDEX, CheckpointError, load_pipeline, save_checkpoint


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(loading, "MAX_SHARD_SIZE", "10KB")  # the tiny UNet's 43 KB in five files


def tiny_pipeline():
    torch.manual_seed(0)
    return DDPMExplorerPipeline(unet=make_tiny_unet(sample_size=32), scheduler=DDPMExplorerScheduler())


def sample(pipe):
    return pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_type="pt")


def test_weights_over_the_shard_size_are_saved_sharded_and_load_back_the_same(small_shards, tmp_path):
    pipe = tiny_pipeline()
    save_checkpoint(pipe, tmp_path / "sharded")
    unet_dir = tmp_path / "sharded" / "unet"
    shards = sorted(unet_dir.glob("diffusion_pytorch_model-*.safetensors"))
    assert len(shards) >= 3 and (unet_dir / SHARD_INDEX).is_file()
    assert not (unet_dir / loading.UNET_WEIGHTS).exists()
    assert all(p.stat().st_size < 15_000 for p in shards)
    loaded = load_pipeline(tmp_path / "sharded")
    for key, value in pipe.unet.state_dict().items():
        assert torch.equal(loaded.unet.state_dict()[key], value), key
    assert torch.equal(sample(loaded).images, sample(pipe).images)


def test_saving_again_leaves_one_set_of_weights(small_shards, tmp_path, monkeypatch):
    pipe = tiny_pipeline()
    monkeypatch.setattr(loading, "MAX_SHARD_SIZE", "10GB")
    save_checkpoint(pipe, tmp_path / "c")  # one file
    monkeypatch.setattr(loading, "MAX_SHARD_SIZE", "10KB")
    save_checkpoint(pipe, tmp_path / "c")  # shards: the single file goes
    names = sorted(p.name for p in (tmp_path / "c" / "unet").iterdir())
    assert loading.UNET_WEIGHTS not in names and SHARD_INDEX in names
    monkeypatch.setattr(loading, "MAX_SHARD_SIZE", "10GB")
    save_checkpoint(pipe, tmp_path / "c")  # one file again: the shards and their index go
    assert sorted(p.name for p in (tmp_path / "c" / "unet").iterdir()) == ["config.json", loading.UNET_WEIGHTS]
    load_pipeline(tmp_path / "c")


def rewrite_index(path, change):
    index_file = path / "unet" / SHARD_INDEX
    index = json.loads(index_file.read_text())
    change(index)
    index_file.write_text(json.dumps(index))


def first_shard(index):
    return sorted(set(index["weight_map"].values()))[0]


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda p: (p / "unet" / "diffusion_pytorch_model-00002-of-00005.safetensors").unlink(), "which is not there"),
        (
            lambda p: rewrite_index(p, lambda i: i["weight_map"].update(conv_in_bias="../../model_index.safetensors")),
            "a shard is a .safetensors file beside the index",
        ),
        (
            lambda p: rewrite_index(p, lambda i: i["weight_map"].update({"conv_in.bias": "weights.bin"})),
            "a shard is a .safetensors file beside the index",
        ),
        (lambda p: rewrite_index(p, lambda i: i.pop("weight_map")), "has no weight_map"),
        (lambda p: (p / "unet" / SHARD_INDEX).write_text("{not json"), "not valid JSON"),
        (
            lambda p: (p / "unet" / "diffusion_pytorch_model-00001-of-00005.safetensors").write_bytes(b"\0junk" * 9),
            "Corrupt safetensors|Could not load",
        ),
    ],
    ids=["missing shard", "path out of the folder", "pickle shard", "no weight map", "bad index", "corrupt shard"],
)
def test_a_broken_sharded_checkpoint_is_one_clear_error(small_shards, tmp_path, breakage, message):
    save_checkpoint(tiny_pipeline(), tmp_path / "c")
    assert len(list((tmp_path / "c" / "unet").glob("*-of-00005.safetensors"))) == 5
    breakage(tmp_path / "c")
    with pytest.raises(CheckpointError, match=message):
        load_pipeline(tmp_path / "c")
